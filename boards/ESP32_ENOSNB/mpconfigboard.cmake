# ESP32 (WROOM, no PSRAM) with the enosnb package frozen into the image and Bluetooth off.
# Built by `make image` (tools/image.py) from MicroPython's ports/esp32 with
# BOARD_DIR=<this directory>; it is ESP32_GENERIC's definition without the BLE parts.
set(IDF_TARGET esp32)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

set(MICROPY_PY_BLUETOOTH OFF)
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/../manifest.py)
