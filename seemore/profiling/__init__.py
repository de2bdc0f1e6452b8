"""Per-device profiling (``python mobile/profile.py``): the device and budget registry, measured
runs on an attached phone over adb, estimates from an artifact when none is attached, and their
validation against this machine and published anchors."""
