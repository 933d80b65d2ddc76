"""plugctl: the host's tool for self-paying metering plugs, real and virtual.

    plugctl sim --state DIR --board sim [--load SPEC] [--speed N] [--rpc URL] ...
    plugctl deploy --port PORT --board NAME
    plugctl repl --port PORT
    plugctl status URL [--raw] | ledger URL [--csv|--json] | plot URL out.png
    plugctl wallet ... | owner ... | config sign|push ...
    plugctl release --key owner.key --version X.Y.Z --board NAME --plug ADDR --out FILE
    plugctl update push --url http://plug bundle.bin
    plugctl devnet [...] | tariff-server [...]

Each subcommand lives in its own module under tools/; this file only dispatches, and
turns ordinary mistakes (a missing file, a port in use, a closed pipe) into one line on
stderr and a non-zero exit status instead of a traceback. `plugctl COMMAND --help`
describes each command's options.
"""

import importlib
import os
import sys

COMMANDS = {
    "sim": ("tools.simrun", "run a virtual plug (firmware on the MicroPython unix port)"),
    "deploy": ("tools.deploy", "build with mpy-cross and copy to a plug with mpremote"),
    "repl": ("tools.serial_repl", "open the plug's serial REPL (no soft reset; it "
                                  "reconnects after a reset)"),
    "status": ("tools.client", "show a plug's /status"),
    "ledger": ("tools.client", "print a plug's invoices and payments"),
    "plot": ("tools.client", "plot energy per channel and cost over time to a PNG"),
    "wallet": ("tools.wallet_cli", "create, provision, show or export a plug's wallet"),
    "owner": ("tools.config_cli", "create an owner key; record the owner on a new plug"),
    "config": ("tools.config_cli", "sign or push a config envelope; print the config schema"),
    "release": ("tools.release", "build a release bundle signed by the owner for some plugs"),
    "update": ("tools.release", "push a release bundle to a plug (POST /update, streamed)"),
    "devnet": ("tools.devnet", "run a local chain (anvil) on loopback; --fund gives ETH"),
    "tariff-server": ("tools.tariff_server", "run the reference tariff server"),
}


def usage():
    lines = ["usage: plugctl COMMAND [ARGS...]", "", "commands:"]
    for name, (_mod, desc) in COMMANDS.items():
        lines.append("  %-14s %s" % (name, desc))
    return "\n".join(lines)


def _oserror_text(e):
    """One line for an OSError: "nokey.key: no such file or directory"."""
    what = e.strerror or str(e) or type(e).__name__
    what = what[:1].lower() + what[1:]
    return "%s: %s" % (e.filename, what) if e.filename else what


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    cmd = argv.pop(0)
    if cmd not in COMMANDS:
        print("plugctl: unknown command %r\n\n%s" % (cmd, usage()), file=sys.stderr)
        return 2
    try:
        mod = importlib.import_module(COMMANDS[cmd][0])
        if hasattr(mod, "cli"):  # modules serving several commands get the command's name
            code = mod.cli(cmd, argv) or 0
        else:
            code = mod.main(argv) or 0
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader went away (`plugctl config schema | head`): stop quietly, as cat does
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it
    except KeyboardInterrupt:
        return 130
    except SystemExit as e:  # a module's refusal: name the command it came from
        if isinstance(e.code, str) and not e.code.startswith("plugctl"):
            print("plugctl %s: %s" % (cmd, e.code), file=sys.stderr)
            return 1
        raise
    except OSError as e:
        print("plugctl %s: %s" % (cmd, _oserror_text(e)), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
