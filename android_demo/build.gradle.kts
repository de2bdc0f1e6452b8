// Top-level build file: the plugins are declared here (versions in gradle/libs.versions.toml)
// and applied in app/build.gradle.kts.
plugins {
    alias(libs.plugins.android.application) apply false
    alias(libs.plugins.kotlin.android) apply false
    alias(libs.plugins.kotlin.compose) apply false
}
