"""The CPython `machine` stand-in (tools/host/machine.py): UART on the emulator's pty, Pin
recording, RTC memory in a file, deepsleep ending the program."""
import time

import pytest

import machine
from tools.modem_emulator import ModemEmulator


@pytest.fixture
def emu():
    # Boot line and AT+CGSN=1 as firmware that has it; the real banner is in test_modem_emulator.
    e = ModemEmulator("sim7020", boot_time=0.01, registration_delay=0.01,
                      boot_lines=["+CPIN: READY"], cgsn_set=True)
    yield e
    machine.UART.detach(2)
    e.stop()


def read_for(uart, until, timeout=3.0):
    out = b""
    deadline = time.monotonic() + timeout
    while until not in out and time.monotonic() < deadline:
        chunk = uart.read()
        if chunk:
            out += chunk
        else:
            time.sleep(0.005)
    return out


def test_uart_without_registered_pty_says_how_to_register(monkeypatch):
    monkeypatch.delenv("ENOSNB_UART7", raising=False)
    with pytest.raises(OSError) as e:
        machine.UART(7)
    assert "ENOSNB_UART7" in str(e.value)


def test_uart_attach_talks_to_the_emulator_and_reads_never_block(emu):
    machine.UART.attach(2, emu.port)
    u = machine.UART(2, 115200, tx=17, rx=16, rxbuf=4096, timeout=0)
    assert read_for(u, b"READY\r\n") == b"\r\n+CPIN: READY\r\n"
    assert u.read() is None and u.read(10) is None and u.any() == 0
    u.write(b"ATE0\r")
    assert read_for(u, b"OK\r\n") == b"ATE0\r\r\nOK\r\n"
    u.write(b"AT+CGSN=1\r")
    deadline = time.monotonic() + 3
    while u.any() < 31 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert u.any() == len(b"\r\n+CGSN: 866425031234567\r\n\r\nOK\r\n")
    assert u.read(4) == b"\r\n+C"
    buf = bytearray(64)
    n = u.readinto(buf)
    assert bytes(buf[:n]) == b"GSN: 866425031234567\r\n\r\nOK\r\n"
    u.deinit()
    with pytest.raises(OSError):
        u.read()


def test_uart_found_through_environment(emu, monkeypatch):
    monkeypatch.setenv("ENOSNB_UART1", emu.port)
    u = machine.UART(1, 9600)
    assert read_for(u, b"READY\r\n").endswith(b"+CPIN: READY\r\n")
    u.write(b"AT\r")
    assert read_for(u, b"OK\r\n") == b"AT\r\r\nOK\r\n"
    u.deinit()


def test_uart_with_timeout_waits_for_data(emu):
    machine.UART.attach(2, emu.port)
    u = machine.UART(2, timeout=2000, timeout_char=50)
    assert u.readline() == b"\r\n"
    assert u.readline() == b"+CPIN: READY\r\n"
    u.deinit()


def test_pin_records_changes_and_calls_watchers():
    machine.Pin.reset_all()
    seen = []
    machine.Pin.watch(4, lambda pin, v: seen.append(v))
    p = machine.Pin(4, machine.Pin.OUT, value=0)
    p.on()
    p.off()
    p(1)
    assert p.value() == 1
    assert [v for _, pin, v in machine.Pin.history if pin == 4] == [0, 1, 0, 1] == seen
    machine.Pin.reset_all()


def test_rtc_memory_survives_in_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ENOSNB_RTC_FILE", str(tmp_path / "rtc.bin"))
    assert machine.RTC().memory() == b""
    machine.RTC().memory(b"\x01state")
    assert machine.RTC().memory() == b"\x01state"
    with pytest.raises(ValueError):
        machine.RTC().memory(bytes(machine.RTC.MEMORY_SIZE + 1))


def test_deepsleep_records_the_time_and_ends_the_program(tmp_path, monkeypatch):
    monkeypatch.setenv("ENOSNB_DEEPSLEEP_FILE", str(tmp_path / "sleep"))
    with pytest.raises(SystemExit):
        machine.deepsleep(60000)
    assert machine.last_deepsleep_ms == 60000
    assert (tmp_path / "sleep").read_text() == "60000\n"


def test_reset_cause_from_environment_and_wdt_feed(monkeypatch):
    monkeypatch.setenv("ENOSNB_RESET_CAUSE", str(machine.DEEPSLEEP_RESET))
    assert machine.reset_cause() == machine.DEEPSLEEP_RESET
    monkeypatch.delenv("ENOSNB_RESET_CAUSE")
    assert machine.reset_cause() == machine.PWRON_RESET
    w = machine.WDT(timeout=10000)
    w.feed()
    assert w.feeds == 1 and not w.expired()


def test_pwrkey_pin_pulse_powers_the_emulated_modem_on_and_a_long_one_off():
    machine.Pin.reset_all()
    e = ModemEmulator("sim7020", boot_time=0.01, registration_delay=0.01, powered=False,
                      boot_lines=["+CPIN: READY"],
                      pwrkey_off_time=0.3)
    try:
        e.follow_pwrkey(machine.Pin, 4, active=1)
        machine.UART.attach(2, e.port)
        u = machine.UART(2)
        time.sleep(0.1)
        assert u.read() is None                      # off: silent
        key = machine.Pin(4, machine.Pin.OUT, value=0)
        key.on()
        time.sleep(0.05)
        key.off()
        assert read_for(u, b"READY\r\n") == b"\r\n+CPIN: READY\r\n"
        key.on()
        time.sleep(0.35)
        key.off()
        assert read_for(u, b"DOWN\r\n") == b"\r\nNORMAL POWER DOWN\r\n"
        assert not e.powered
        u.deinit()
    finally:
        machine.UART.detach(2)
        machine.Pin.reset_all()
        e.stop()
