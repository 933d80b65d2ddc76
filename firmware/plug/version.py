# The firmware's version (semantic) and the build it came from (the short git hash, written
# in by tools/build_mpy and boards/manifest.py when they compile this file; "dev" from source).
VERSION = "0.5.0"
BUILD = "dev"
