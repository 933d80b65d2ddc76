"""Compile the test contracts with solcjs (npm `solc`), cached under build/contracts/.

    compiled("TestToken") -> (abi: list, bytecode: bytes)

The cache key is the source's sha256, so an edited contract is rebuilt; each build
goes to a private directory renamed into place, so parallel test workers never read
a half-written artefact.
"""

import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

from tools.paths import BUILD, executable

HERE = os.path.dirname(os.path.abspath(__file__))


def compiled(name):
    src = os.path.join(HERE, name + ".sol")
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    out = os.path.join(BUILD, "contracts", "%s-%s" % (name, digest))
    if not os.path.isdir(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=os.path.dirname(out))
        r = subprocess.run([executable("solcjs"), "--bin", "--abi", "--optimize", "-o", tmp,
                            os.path.basename(src)], cwd=HERE, capture_output=True, text=True)
        if r.returncode:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError("solcjs failed on %s:\n%s%s" % (src, r.stdout, r.stderr))
        try:
            os.rename(tmp, out)
        except OSError:  # another worker got there first
            shutil.rmtree(tmp, ignore_errors=True)
    abi_path = glob.glob(os.path.join(out, "*_%s.abi" % name))[0]
    bin_path = glob.glob(os.path.join(out, "*_%s.bin" % name))[0]
    with open(abi_path) as f:
        abi = json.load(f)
    with open(bin_path) as f:
        return abi, bytes.fromhex(f.read().strip())
