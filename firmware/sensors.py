"""Your sensor: edit this file. main.py calls make_sensor() once per boot and read() once
per report cycle; read() returns {measurement point name: value} as in your EnOS model.

Example for a DS18B20 on GPIO 13 (copy it below, return Ds18b20() from make_sensor()):

    import onewire, ds18x20, machine, time
    class Ds18b20(Sensor):
        def setup(self):
            self.ds = ds18x20.DS18X20(onewire.OneWire(machine.Pin(13)))
            self.rom = self.ds.scan()[0]
        def read(self):
            self.ds.convert_temp()
            time.sleep_ms(750)
            return {"temperature": round(self.ds.read_temp(self.rom), 2)}
"""
from enosnb.sensor import DemoSensor, Sensor  # noqa: F401  (Sensor: base for your class)


def make_sensor():
    return DemoSensor()
