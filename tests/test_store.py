"""The durable store on MicroPython: torn and corrupt writes fall back to the last good copy."""


def run(micropython, tmp_path, code):
    return micropython.eval("from plug.store import Store\ns = Store(%r)\n" % str(tmp_path)
                            + code)


def test_save_load_roundtrip_and_generations(micropython, tmp_path):
    got = run(micropython, tmp_path,
              "s.save('led', {'a': 1}); s.save('led', {'a': 2, 'big': 2**70})\n"
              "t = Store(%r)\nprint((t.load('led'), t.generation('led')))" % str(tmp_path))
    assert got == ({"a": 2, "big": 2**70}, 2)


def test_torn_newest_slot_falls_back_to_previous(micropython, tmp_path):
    run(micropython, tmp_path, "s.save('led', {'v': 1}); s.save('led', {'v': 2}); print(1)")
    newest = tmp_path / "led.0"  # generation 2 lives in slot 0
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) - 3])  # power cut mid-write
    assert run(micropython, tmp_path, "print(s.load('led'))") == {"v": 1}
    # the next save must not overwrite the good slot
    assert run(micropython, tmp_path, "s.load('led'); s.save('led', {'v': 3});"
               "print(Store(%r).load('led'))" % str(tmp_path)) == {"v": 3}
    assert (tmp_path / "led.1").read_bytes().endswith(b'{"v": 1}')


def test_corrupt_byte_detected(micropython, tmp_path):
    run(micropython, tmp_path, "s.save('x', {'v': 1}); s.save('x', {'v': 22}); print(1)")
    p = tmp_path / "x.0"
    b = bytearray(p.read_bytes())
    b[-3] ^= 0x01
    p.write_bytes(bytes(b))
    assert run(micropython, tmp_path, "print(s.load('x'))") == {"v": 1}


def test_missing_gives_default(micropython, tmp_path):
    assert run(micropython, tmp_path, "print(repr(s.load('none', 'dflt')))") == "dflt"


def test_a_state_of_a_fifth_of_the_heap_saves_and_loads(micropython, tmp_path):
    # the encoded state is streamed to the flash, never held whole in the heap
    got = run(micropython, tmp_path,
              "import gc\nobj = {'recs': ['0x' + '%064x' % i for i in range(140)]}\n"
              "gc.collect()\ns.save('payments', obj)\nobj = None\ngc.collect()\n"
              "r = s.load('payments')['recs']\nprint([len(r), r[139][-3:]])")
    assert got == [140, "08b"]


def test_a_save_over_its_bound_is_refused_and_the_good_copy_stays(micropython, tmp_path):
    got = run(micropython, tmp_path,
              "from plug.store import StoreError, bound\n"
              "s.save('boots', {'v': 1})\n"
              "try:\n    s.save('boots', {'v': 'x' * bound('boots')})\n"
              "except StoreError as e:\n    print(repr(str(e)))\n")
    assert "boots:" in got and "more than the 4096 this file may hold" in got
    assert run(micropython, tmp_path, "print(Store(%r).load('boots'))" % str(tmp_path)) == \
        {"v": 1}
    assert not (tmp_path / "boots.tmp").exists()
