"""The README's "virtual plug, step by step" run as written: the plug it sets up bills and
pays its provider on chain. Only the ports, /tmp paths and --speed are changed, and waits
for each background service are put between the steps, as a person would wait."""

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from tools.devnet import free_port
from tools.paths import ROOT

PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
ANVIL_START_BALANCE = 10000 * 10**18  # anvil's default for its accounts

WAIT = """
waitfor() { for _ in $(seq 450); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
            echo "timed out: $*"; return 1; }
paid() { python -c "import json,sys,urllib.request as u
sys.exit(not json.load(u.urlopen('$1/status'))['payments']['confirmed'])"; }
"""


def readme_steps():
    text = open(os.path.join(ROOT, "README.md")).read()
    sec = text[text.index("## The virtual plug, step by step"):]
    block = re.search(r"```\n(.*?)```", sec, re.S).group(1)
    steps = []
    for line in block.replace("\\\n", " ").splitlines():
        if line.strip():
            steps.append(line)
    return steps


def with_ports(text, ports):
    for old, new in zip(("8545", "8088", "8081"), ports):
        text = re.sub(r"\b%s\b" % old, str(new), text)
    return text


def script(steps, ports, tmp):
    rpc, tariff, http = ("http://127.0.0.1:%d" % p for p in ports)
    tty = str(tmp / "work" / "plug1.tty")  # the README writes into work/
    out = ["set -e", "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT", WAIT]
    for step in steps:
        cmd = step.strip()
        if cmd.startswith("plugctl repl"):
            continue  # interactive
        if cmd.startswith("plugctl status"):
            out.append("waitfor paid %s" % http)
        out.append("echo '== %s'" % cmd.split()[1] if cmd.startswith("plugctl ") else "")
        out.append(cmd)
        if "plugctl devnet" in cmd:
            out.append("waitfor curl -sf %s -H 'Content-Type: application/json' --data "
                       "'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_chainId\"}'" % rpc)
        elif "plugctl tariff-server" in cmd:
            out.append("waitfor curl -sf %s/provider.json" % tariff)
        elif "plugctl sim" in cmd:
            out.append("waitfor test -e %s; sleep 1" % tty)
        elif "plugctl deploy" in cmd:
            out.append("waitfor curl -sf %s/status" % http)
    out.append("echo '== received'")
    out.append("curl -s %s -H 'Content-Type: application/json' --data '{\"jsonrpc\":\"2.0\","
               "\"id\":1,\"method\":\"eth_getBalance\",\"params\":[\"%s\",\"latest\"]}'"
               % (rpc, PAYEE))
    text = with_ports("\n".join(out) + "\n", ports)
    text = text.replace("/tmp/plug1", str(tmp / "plug1")).replace("--speed 60", "--speed 600")
    return text


def sections(out):
    got, name = {}, None
    for line in out.splitlines():
        if line.startswith("== "):
            name = line[3:]
            got[name] = []
        elif name:
            got[name].append(line)
    return {k: "\n".join(v) for k, v in got.items()}


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's steps use curl")
def test_readme_steps_make_a_plug_that_bills_and_pays(tmp_path):
    ports = [free_port(), free_port(), free_port()]
    data = tmp_path / "tests" / "data"
    data.mkdir(parents=True)
    for name in ("tariff_schedule_open.json", "plug_config.json"):
        text = open(os.path.join(ROOT, "tests", "data", name)).read()
        (data / name).write_text(with_ports(text, ports))
    os.symlink(os.path.join(ROOT, ".venv"), tmp_path / ".venv")
    sh = tmp_path / "steps.sh"
    sh.write_text(script(readme_steps(), ports, tmp_path))
    p = subprocess.Popen(["bash", str(sh)], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=150)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(20)
    assert p.returncode == 0, out[-3000:]
    s = sections(out)
    assert '200 {"version": 1}' in s["config"], out[-3000:]
    status = s["status"]
    assert "config v1" in status and "Example Energy" in status and PAYEE in status, status
    assert "None" not in status, status
    assert int(re.search(r"payments: (\d+) confirmed", status).group(1)) >= 1, status
    rows = list(csv.DictReader(io.StringIO(s["ledger"])))  # columns by name
    paid = sum(int(r.get("amount_base_units") or r["amount"]) for r in rows
               if r["state"] == "confirmed")
    assert paid > 0 and all(r["payee"] == PAYEE for r in rows), s["ledger"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["start_utc"]) and
               re.fullmatch(r"\d+\.\d{3}", r["energy_wh"]) and r["currency"] == "ETH"
               for r in rows), s["ledger"]  # ISO-8601 UTC, Wh, the currency's unit
    assert re.search(r"balance \d+\.\d+ ETH", status) and "0/0" not in status, status
    assert (tmp_path / "work" / "day.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "work" / "owner.key").exists()
    assert not [f for f in os.listdir(tmp_path) if f.endswith((".key", ".json", ".png"))]
    received = int(json.loads(s["received"])["result"], 16) - ANVIL_START_BALANCE
    assert received >= paid > 0
