"""What the Android and iOS demo apps share with the Python reference: the app rules and their golden files."""
