"""A device maker's sensors.py that fails never keeps the board awake and never puts made-up
readings into EnOS: the twin boots firmware/main.py with a broken sensors.py."""
import pytest

from tools.twin import Twin

BROKEN = {
    # The I2C sensor is not wired: the module raises while it loads.
    "raises_at_import": "raise OSError(19, 'ENODEV: no sensor on the I2C bus')\n",
    # A driver module the maker forgot to copy to the board.
    "imports_a_missing_driver": "import bme280_driver_not_on_the_board\n",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_sensors_py_that_fails_to_load_still_ends_in_deep_sleep_without_readings(
        tmp_path, kind):
    path = tmp_path / "sensors.py"
    path.write_text(BROKEN[kind])
    twin = Twin(out=str(tmp_path / "twin"), sleep_scale=0.0002, sensors=str(path),
                emulator={"nat": None}).start()
    try:
        boots = twin.run_cycles(2)
        points = twin.points()
    finally:
        twin.stop()
    for b in boots:
        assert b.sleep_ms is not None  # deep sleep, not a traceback at the REPL
        assert b.line("[enosnb] sensors.py failed to import:")
        assert not b.line("using the demo sensor")
    assert points == []  # the demo sensor's numbers never stand in for the maker's
