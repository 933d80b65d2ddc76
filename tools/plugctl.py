"""plugctl: the host's tool for self-paying metering plugs, real and virtual.

    plugctl sim --state DIR --board sim [--load SPEC] [--speed N] [--rpc URL] ...
    plugctl deploy --port PORT --board NAME
    plugctl repl --port PORT
    plugctl status URL | ledger URL [--csv] | plot URL out.png
    plugctl wallet ... | owner ... | config sign|push ...
    plugctl devnet [...] | tariff-server [...]

Each subcommand lives in its own module under tools/; this file only dispatches.
"""

import importlib
import sys

COMMANDS = {
    "sim": ("tools.simrun", "run a virtual plug (firmware on the MicroPython unix port)"),
    "deploy": ("tools.deploy", "build with mpy-cross and copy to a plug with mpremote"),
    "repl": ("tools.deploy", "open the plug's serial REPL (mpremote, no soft reset)"),
    "status": ("tools.client", "show a plug's /status"),
    "ledger": ("tools.client", "print a plug's invoices and payments"),
    "plot": ("tools.client", "plot energy per channel and cost over time to a PNG"),
    "wallet": ("tools.wallet_cli", "create, provision or inspect a plug's wallet"),
    "owner": ("tools.config_cli", "owner keys and provisioning the owner's address"),
    "config": ("tools.config_cli", "sign, show or push a configuration envelope"),
    "devnet": ("tools.devnet", "run anvil on loopback with the plug funded"),
    "tariff-server": ("tools.tariff_server", "run the reference tariff server"),
}


def usage():
    lines = ["usage: plugctl COMMAND [ARGS...]", "", "commands:"]
    for name, (_mod, desc) in COMMANDS.items():
        lines.append("  %-14s %s" % (name, desc))
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    cmd = argv.pop(0)
    if cmd not in COMMANDS:
        print("plugctl: unknown command %r\n\n%s" % (cmd, usage()), file=sys.stderr)
        return 2
    mod = importlib.import_module(COMMANDS[cmd][0])
    if hasattr(mod, "cli"):  # modules serving several commands get the command's name
        return mod.cli(cmd, argv) or 0
    return mod.main(argv) or 0


if __name__ == "__main__":
    sys.exit(main())
