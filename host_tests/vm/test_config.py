"""secrets.json / board.json validation (enosnb.config): messages name the field and the fix
and never contain a secret. Runs on CPython and in the MicroPython VM."""
from enosnb.config import ConfigError, parse_board, parse_secrets
from vmcheck import raises

SECRET = "S3cr3t-Do-Not-Print-0123456789"


def _with(d, kw):
    """d with the keyword fields set, and those given as None removed."""
    for k in kw:
        if kw[k] is None:
            d.pop(k, None)
        else:
            d[k] = kw[k]
    return d


def _secrets(**kw):
    return _with({"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc", "deviceSecret": SECRET,
                  "host": "coap-enos.example.com"}, kw)


def _board(**kw):
    return _with({"name": "t", "modem": "sim7020",
                  "uart": {"id": 1, "baudrate": 115200, "tx": 27, "rx": 26},
                  "pwrkey": {"pin": 4, "active_high": True, "pulse_ms": 500}}, kw)


def _secrets_error(**kw):
    e = raises(ConfigError, parse_secrets, _secrets(**kw))
    msg = str(e)
    assert SECRET not in msg and "S3cr3t" not in msg
    assert msg.startswith("secrets.json: ")
    return msg


def _board_error(**kw):
    msg = str(raises(ConfigError, parse_board, _board(**kw)))
    assert msg.startswith("board.json")
    return msg


def test_a_minimal_secrets_file_gets_the_documented_defaults():
    s = parse_secrets(_secrets())
    assert s.secure_mode == 2 and s.lifetime == 3600 and s.dtls is True
    assert s.port == 5684 and s.port_plain == 5683 and s.apn == ""
    assert s.report_interval_s == 600 and s.psk_slice == (8, 24)
    assert s.ack_timeout_ms == 15000 and s.max_retransmit == 4
    assert s.secret == SECRET and s.effective_secure_mode == 2
    assert s.warnings == []


def test_repr_of_secrets_shows_lengths_not_values():
    r = repr(parse_secrets(_secrets()))
    assert SECRET not in r and "MuGsF6W4" not in r
    assert "len %d" % len(SECRET) in r


def test_missing_device_secret_names_the_field_and_the_alternative():
    msg = _secrets_error(deviceSecret=None)
    assert "deviceSecret is missing" in msg and "secureMode 3" in msg


def test_wrong_case_of_a_field_name_is_pointed_out():
    d = _secrets(deviceSecret=None)
    d["devicesecret"] = SECRET
    msg = str(raises(ConfigError, parse_secrets, d))
    assert 'write "deviceSecret"' in msg and SECRET not in msg


def test_secure_mode_3_needs_a_product_secret_and_dtls():
    assert "productSecret is missing" in _secrets_error(secureMode=3, deviceSecret=None)
    msg = _secrets_error(secureMode=3, deviceSecret=None, productSecret=SECRET, dtls=False)
    assert "3 needs DTLS" in msg
    s = parse_secrets(_secrets(secureMode=3, deviceSecret=None, productSecret=SECRET))
    assert s.effective_secure_mode == 3 and s.secret == SECRET


def test_lifetime_out_of_range_is_refused_with_the_range():
    msg = _secrets_error(lifetime=20)
    assert "lifetime is 20, outside 30..86400" in msg
    assert "must be an integer" in _secrets_error(lifetime="3600")


def test_a_secret_with_a_pasted_line_break_is_refused_without_echoing_it():
    msg = _secrets_error(deviceSecret=SECRET + "\n")
    assert "deviceSecret" in msg and "control character" in msg


def test_a_non_string_secret_is_refused_without_echoing_it():
    assert "must be a JSON string" in _secrets_error(deviceSecret=12345678)


def test_keys_with_a_comma_break_the_psk_identity_and_are_refused():
    msg = _secrets_error(deviceKey="ab,cd")
    assert "deviceKey" in msg and "','" in msg and "ab,cd" not in msg


def test_template_placeholders_are_refused():
    assert "placeholder" in _secrets_error(deviceSecret="YOUR_DEVICE_SECRET")
    assert "placeholder" in _secrets_error(host="coap-YOUR-ENOS-ENVIRONMENT-HOST")


def test_device_key_imei_is_filled_in_from_the_modem():
    s = parse_secrets(_secrets(deviceKey="IMEI"))
    assert s.uses_imei
    s.set_device_key("860123456789012")
    assert s.device_key == "860123456789012" and not s.uses_imei
    raises(ConfigError, s.set_device_key, "ERROR")


def test_host_with_a_scheme_or_port_is_refused():
    assert "bare host name" in _secrets_error(host="coaps://coap-x.example.com:5684")


def test_psk_slice_accepts_only_the_two_readings():
    assert parse_secrets(_secrets(psk_slice="9:25")).psk_slice == (9, 25)
    assert "psk_slice" in _secrets_error(psk_slice="0:16")


def test_unknown_fields_and_a_short_lifetime_are_warnings():
    s = parse_secrets(_secrets(colour="red", _note="x", lifetime=300, report_interval_s=600))
    assert len(s.warnings) == 2
    assert "colour" in s.warnings[0] and "offline" in s.warnings[1]


def test_the_example_boards_pass():
    b = parse_board(_board())
    assert b.uart == {"id": 1, "baudrate": 115200, "tx": 27, "rx": 26, "rxbuf": 4096}
    assert b.modem_kwargs() == {"pwrkey": 4, "pwrkey_active_high": True, "pwrkey_ms": 500,
                                "baudrate": 115200}
    assert b.uart_kwargs()["rxbuf"] == 4096 and b.wdt_timeout_ms == 180000
    assert b.reset is None and b.bands is None


def test_an_unknown_modem_names_the_supported_ones():
    msg = _board_error(modem="sim800")
    assert "modem" in msg and '"sim7020" or "bc95"' in msg


def test_uart0_is_refused_because_it_is_the_repl():
    assert "UART0 is the USB REPL" in _board_error(uart={"id": 0, "baudrate": 115200,
                                                         "tx": 1, "rx": 3})


def test_flash_pins_and_input_only_pins_are_refused():
    msg = _board_error(uart={"id": 1, "baudrate": 115200, "tx": 7, "rx": 26})
    assert "tx" in msg and "flash" in msg
    msg = _board_error(pwrkey={"pin": 36})
    assert "input-only" in msg and "pwrkey" in msg


def test_a_pin_used_twice_is_refused():
    msg = _board_error(led={"pin": 27})
    assert "led.pin" in msg and "uart.tx" in msg


def test_an_odd_baud_rate_lists_the_valid_ones():
    msg = _board_error(uart={"id": 1, "baudrate": 115201, "tx": 27, "rx": 26})
    assert "115200" in msg and "BC95: 9600" in msg


def test_a_fast_bc95_is_a_warning():
    b = parse_board(_board(modem="bc95", pwrkey=None))
    assert "deep sleep" in b.warnings[0]


def test_bands_must_be_band_numbers():
    assert parse_board(_board(bands=[3, 8, 20])).bands == [3, 8, 20]
    assert "bands" in _board_error(bands=["B20"])


def test_attach_timeout_is_optional_and_range_checked():
    assert parse_board(_board()).attach_timeout_ms is None  # the app's default applies
    assert parse_board(_board(attach_timeout_ms=300000)).attach_timeout_ms == 300000
    assert "attach_timeout_ms is 500, outside 1000..600000" in _board_error(attach_timeout_ms=500)
    assert "without quotes" in _board_error(attach_timeout_ms="120000")


def test_first_attach_budget_and_modem_clock_are_optional_and_checked():
    b = parse_board(_board(modem="bc95", pwrkey=None, first_attach_timeout_ms=600000,
                           modem_clock="local"))
    assert b.first_attach_timeout_ms == 600000 and b.modem_kwargs()["cclk_utc"] is False
    assert "cclk_utc" not in parse_board(_board()).modem_kwargs()
    assert "outside 10000..1800000" in _board_error(first_attach_timeout_ms=5000)
    assert 'use "utc" or "local"' in _board_error(modem_clock="UTC+8")


def test_enos_config_maps_the_fields_the_enos_client_reads():
    s = parse_secrets(_secrets(psk_slice="9:25", auth_fallback=True))
    c = s.enos_config()
    assert c["productKey"] == "MuGsF6W4" and c["deviceSecret"] == SECRET
    assert c["pskOffset"] == 9 and c["dtlsAuth"] is True and c["lifetime"] == 3600
    assert c["signUppercase"] is True and c["contentFormat"] is True
    imei = parse_secrets(_secrets(deviceKey="imei"))
    assert "set_device_key" in str(raises(ConfigError, imei.enos_config))
