# The CA certificates the plug checks https servers against (plug/http_client.py):
# CA_FILE on the flash, DER certificates one after another, at most MAX_CA_BYTES in all
# and MAX_CERT_BYTES each, as `plugctl deploy --ca roots.pem` writes it.
#
#   tls_ca.boot(log)    the app's boot: if CA_FILE exists, build the client context now,
#                       while the heap is whole (a problem is logged, not raised)
#   tls_ca.context()    the context, built once per boot (at the first https request if
#                       boot did not): OSError with what to do if the file is missing or
#                       unusable, MemoryError saying so if there was no room to load it
#
# The file is streamed: each certificate's DER header (at most 5 bytes) is read into a
# small buffer, then the certificate alone into a bytes of its own size, handed to
# mbedtls and dropped. Only the context is kept; nothing the size of the whole file is
# ever allocated. A failure is not kept: the next https request reads the file again.
CA_FILE = "ca.der"  # on the flash, beside main.py
MAX_CA_BYTES = 16384  # a few roots; a whole system bundle would not fit the heap
MAX_CERT_BYTES = 4096  # one root certificate is 0.5-2 KB


def _span(h, n, at):
    """(header length, certificate length) of the DER SEQUENCE whose first n (>= 2, or
    all that is left) bytes are h, starting at byte `at` of the file; ValueError if not."""
    if n < 2 or h[0] != 0x30:
        raise ValueError("not a DER certificate at byte %d" % at)
    k = h[1]
    if not k & 0x80:
        return 2, 2 + k
    k &= 0x7F
    if not 1 <= k <= 3 or n < 2 + k:
        raise ValueError("bad DER length at byte %d" % at)
    return 2 + k, 2 + k + int.from_bytes(bytes(h[2:2 + k]), "big")


def _bound(n, at):
    if n > MAX_CERT_BYTES:
        raise ValueError("the certificate at byte %d is %d bytes, over the %d bytes a root "
                         "may have here" % (at, n, MAX_CERT_BYTES))


def der_certs(data):
    """The DER certificates of a CA file's bytes, one bytes each (the host's deploy checks
    a file with it); ValueError if it is not a run of DER SEQUENCEs."""
    out = []
    i = 0
    while i < len(data):
        n = _span(data[i:i + 5], min(5, len(data) - i), i)[1]
        _bound(n, i)
        if i + n > len(data):
            raise ValueError("truncated DER certificate at byte %d" % i)
        out.append(data[i:i + n])
        i += n
    return out


def _load(ctx, f, size):
    """Every certificate of the open file f (size bytes) into ctx; how many."""
    h = bytearray(5)
    at = count = 0
    while at < size:
        f.seek(at)
        n = _span(h, f.readinto(h), at)[1]
        _bound(n, at)
        if at + n > size:
            raise ValueError("truncated DER certificate at byte %d" % at)
        f.seek(at)
        der = f.read(n)
        if len(der) != n:
            raise ValueError("truncated DER certificate at byte %d" % at)
        try:
            ctx.load_verify_locations(der)
        except ValueError as e:  # mbedtls says "invalid cert" for its own lack of memory too
            raise ValueError("certificate %d (at byte %d): %s (or no memory for mbedtls "
                             "to parse it)" % (count + 1, at, e))
        der = None
        at += n
        count += 1
    return count


_made = None  # (CA_FILE, context): built once per boot


def context():
    """An mbedtls client context that requires a certificate chain to CA_FILE's roots."""
    global _made
    if _made is not None and _made[0] == CA_FILE:
        return _made[1]
    import tls

    try:
        f = open(CA_FILE, "rb")
    except OSError:
        raise OSError("https: no CA certificates on the plug (%s): the server cannot be "
                      "checked, so nothing is sent" % CA_FILE)
    try:
        size = f.seek(0, 2)
        if size > MAX_CA_BYTES:
            raise OSError("https: %s is over %d bytes" % (CA_FILE, MAX_CA_BYTES))
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = tls.CERT_REQUIRED
        if not _load(ctx, f, size):
            raise OSError("https: %s holds no certificate" % CA_FILE)
    except ValueError as e:
        raise OSError("https: %s is not usable: %s" % (CA_FILE, e))
    except MemoryError as e:
        raise MemoryError("https: no memory to load the CA certificates of %s (%s)"
                          % (CA_FILE, e))
    finally:
        f.close()
    _made = (CA_FILE, ctx)
    return ctx


def boot(log):
    """The context built at boot if CA_FILE exists (a plug without it speaks http only)."""
    try:
        open(CA_FILE, "rb").close()
    except OSError:
        return
    try:
        context()
    except (OSError, MemoryError) as e:  # told again at each https request
        log("[tls] %s" % e)
