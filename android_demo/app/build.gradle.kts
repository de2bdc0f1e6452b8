import org.jetbrains.kotlin.gradle.dsl.JvmTarget
import org.jetbrains.kotlin.gradle.tasks.KotlinCompile

plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
    alias(libs.plugins.kotlin.compose)
}

// Which ExecuTorch Android library to build with: -Pseemore.executorch=xnnpack (default, from
// gradle.properties) or -Pseemore.executorch=vulkan. Both AARs contain the XNNPACK backend; the
// Vulkan one adds the Vulkan (GPU) backend, which Vulkan .pte files need.
val executorchFlavor: String = providers.gradleProperty("seemore.executorch").getOrElse("xnnpack")
require(executorchFlavor == "xnnpack" || executorchFlavor == "vulkan") {
    "-Pseemore.executorch must be xnnpack or vulkan, got '$executorchFlavor'"
}

android {
    namespace = "org.seemore.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.seemore.demo"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        buildConfigField("String", "EXECUTORCH_FLAVOR", "\"$executorchFlavor\"")
        buildConfigField("String", "EXECUTORCH_VERSION", "\"${libs.versions.executorch.get()}\"")
        ndk {
            // The ExecuTorch AARs ship these two ABIs only.
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
    }

    sourceSets {
        getByName("main") {
            // src/logic/kotlin: the plain-Kotlin rules (no Android imports), also compiled and
            // checked on the JVM by src/logicCheck (see README.md).
            java.srcDirs("src/main/kotlin", "src/logic/kotlin")
        }
    }

    buildTypes {
        release {
            // Minification off: nothing is stripped from the ExecuTorch / fbjni JNI classes.
            // proguard-rules.pro holds the keep rules for whoever turns it on.
            isMinifyEnabled = false
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    buildFeatures {
        compose = true
        buildConfig = true
    }
}

tasks.withType<KotlinCompile>().configureEach {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    if (executorchFlavor == "vulkan") {
        implementation(libs.executorch.android.vulkan)
    } else {
        implementation(libs.executorch.android)
    }
    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.exifinterface)
    implementation(libs.androidx.activity.compose)
    implementation(libs.androidx.lifecycle.viewmodel.compose)
    implementation(libs.androidx.lifecycle.runtime.compose)
    implementation(platform(libs.androidx.compose.bom))
    implementation(libs.androidx.compose.ui)
    implementation(libs.androidx.compose.ui.graphics)
    implementation(libs.androidx.compose.foundation)
    implementation(libs.androidx.compose.material3)
    implementation(libs.kotlinx.coroutines.android)
}
