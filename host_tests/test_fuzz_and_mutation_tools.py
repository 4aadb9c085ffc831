"""The test-strength tools themselves: a short seeded `make fuzz` on both runtimes prints its
figures and finds nothing, the same input number is the same bytes on MicroPython and CPython,
and `make mutation`'s scoring keeps equivalents, timeouts and unchecked mutants apart."""
import os
import subprocess
import sys

import pytest

from tools import mutation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="micropython unix port missing")
def test_short_fuzz_run_prints_figures_for_both_runtimes_and_finds_no_escape():
    p = subprocess.run([sys.executable, "-m", "tools.fuzz", "--inputs", "400", "--step", "200",
                        "--only", "coap_codec,dtls_record,config"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = dict(line.split(": ", 1) for line in p.stdout.splitlines() if ": " in line)
    for name in ("coap_codec", "dtls_record", "config"):
        assert lines["fuzz.%s.inputs_micropython" % name] == "400"
        assert lines["fuzz.%s.inputs_cpython" % name] == "400"
        assert float(lines["fuzz.%s.branch_pct" % name]) > 20
    assert lines["fuzz.escapes"] == "0" and lines["fuzz.hangs"] == "0"


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="micropython unix port missing")
def test_input_number_i_is_the_same_bytes_on_micropython_and_cpython():
    code = ("import sys; sys.path.insert(0, %r); from tools.fuzz import engine; "
            "print([engine.input_for(7, i, [b'seed one', b'\\x00\\xff'], [b'tok'], 64).hex() "
            "for i in range(300)])" % ROOT)
    outs = [subprocess.run([exe, "-c", code], capture_output=True, text=True, timeout=60).stdout
            for exe in (MICROPYTHON, sys.executable)]
    assert outs[0] and outs[0] == outs[1]


def test_mutation_score_counts_timeouts_as_killed_and_leaves_out_equivalent_and_unchecked():
    codes = {"enosnb.coap.message.x_decode__mutmut_1": 1,
             "enosnb.coap.message.x_decode__mutmut_2": 36,
             "enosnb.coap.message.x_decode__mutmut_3": 0,
             "enosnb.coap.message.x_decode__mutmut_4": 0,
             "enosnb.coap.message.x_decode__mutmut_5": None,
             "enosnb.store.x_crc__mutmut_1": 33}
    s = mutation.summarise(codes, {"enosnb.coap.message.x_decode__mutmut_4": "why"})
    coap = s["coap"]
    assert (coap["mutants"], coap["killed"], coap["survived"], coap["equivalent"],
            coap["not_checked"]) == (5, 2, 1, 1, 1)
    assert coap["score_pct"] == round(100 * 2 / 3, 1)
    assert coap["survivors"] == ["enosnb.coap.message.x_decode__mutmut_3"]
    assert s["store"]["survived"] == 1 and s["store"]["score_pct"] == 0.0


def test_equivalents_file_is_name_then_reason_with_comments(tmp_path):
    f = tmp_path / "eq.txt"
    f.write_text("# header\n\nenosnb.state.x_a__mutmut_1  value overwritten before use\n")
    assert mutation.load_equivalent(str(f)) == {
        "enosnb.state.x_a__mutmut_1": "value overwritten before use"}
    assert mutation.load_equivalent(str(tmp_path / "missing.txt")) == {}


def test_a_declared_equivalent_that_a_test_kills_is_reported_for_its_package_only():
    codes = {"enosnb.coap.message.x_a__mutmut_1": 1, "enosnb.coap.message.x_a__mutmut_2": 0,
             "enosnb.coap.message.x_a__mutmut_3": 36, "enosnb.store.x_b__mutmut_1": 1}
    eq = dict.fromkeys(["enosnb.coap.message.x_a__mutmut_1", "enosnb.coap.message.x_a__mutmut_2",
                        "enosnb.coap.message.x_a__mutmut_3", "enosnb.store.x_b__mutmut_1",
                        "enosnb.coap.message.x_gone__mutmut_1"], "why")
    assert mutation.misdeclared(codes, eq, ["coap"]) == [
        "enosnb.coap.message.x_a__mutmut_1", "enosnb.coap.message.x_a__mutmut_3"]
    assert mutation.misdeclared(codes, eq, ["store"]) == ["enosnb.store.x_b__mutmut_1"]


def test_a_kept_run_tests_again_every_mutant_of_the_packages_that_was_not_killed():
    codes = {"enosnb.coap.message.x_a__mutmut_1": 1, "enosnb.coap.message.x_a__mutmut_2": 0,
             "enosnb.coap.message.x_a__mutmut_3": None, "enosnb.coap.message.x_a__mutmut_4": 33,
             "enosnb.store.x_b__mutmut_1": 0}
    assert mutation.rerun_names(codes, ["coap"]) == [
        "enosnb.coap.message.x_a__mutmut_2", "enosnb.coap.message.x_a__mutmut_3",
        "enosnb.coap.message.x_a__mutmut_4"]
    assert mutation.rerun_names(codes, ["coap", "store"])[-1] == "enosnb.store.x_b__mutmut_1"
    assert mutation.MIN_SCORE_PCT == 95.0
