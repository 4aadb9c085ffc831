// ESP32 + enosnb frozen (boards/manifest.py), Bluetooth compiled out: the ESP-IDF then keeps
// no BT controller memory, which leaves more DRAM to the heap on boards without PSRAM.
#define MICROPY_HW_BOARD_NAME "ESP32 enosnb (frozen, no BLE)"
#define MICROPY_HW_MCU_NAME "ESP32"
#define MICROPY_PY_BLUETOOTH (0)
