"""A peer no one in switchboard wrote (spec 13-S08): reaches a host's
mailslot and pipe through its gateway with eclipse-zenoh, using only
doc/gateway-keys.md.

    gateway_peer.py ENDPOINT HOST mailslot NAME MESSAGE
    gateway_peer.py ENDPOINT HOST pipe NAME MESSAGE...

`pipe` sends each MESSAGE as one message and prints each reply message
("reply: TEXT"), then closes. Exit code 2 when the host does not answer.
"""

import secrets
import sys
import time

import msgpack
import zenoh

BLOCK = zenoh.CongestionControl.BLOCK


def open_session(endpoint):
    conf = zenoh.Config()
    conf.insert_json5("mode", '"client"')
    conf.insert_json5("connect/endpoints", f'["{endpoint}"]')
    conf.insert_json5("scouting/multicast/enabled", "false")
    return zenoh.open(conf)


def key_chunk(name):
    safe = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-")
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in name.lower().encode())


def wait_for_gateway(s, host, deadline):
    """A query right after connecting can find nobody: ask until the deadline."""
    while time.monotonic() < deadline:
        for reply in s.liveliness().get(f"switchboard/{key_chunk(host)}/gateway", timeout=1.0):
            if reply.ok is not None:
                return True
        time.sleep(0.05)
    return False


def mailslot(s, host, name, message):
    s.put(f"switchboard/{key_chunk(host)}/mailslot/{key_chunk(name)}", message.encode(), congestion_control=BLOCK)
    print("sent", flush=True)


def pipe(s, host, name, messages):
    h = key_chunk(host)
    cid = secrets.token_hex(16)
    sub = s.declare_subscriber(f"switchboard/{h}/conn/{cid}/s")
    token = s.liveliness().declare_token(f"switchboard/{h}/conn/{cid}/client")
    request = msgpack.packb({"id": cid, "window": 262144})
    opened = None
    deadline = time.monotonic() + 10
    while opened is None and time.monotonic() < deadline:
        for reply in s.get(f"switchboard/{h}/pipe/{key_chunk(name)}", payload=request, timeout=2.0):
            if reply.ok is not None:
                opened = msgpack.unpackb(reply.ok.payload.to_bytes())
    if opened is None:
        sys.exit(2)
    if opened["code"] != 0:
        print(f"refused: {opened['code']} {opened['message']}", flush=True)
        return
    print(f"opened: message_mode={opened['message_mode']}", flush=True)
    out_seq, in_seq, taken = 0, 0, 0

    def send(kind, n, data):
        nonlocal out_seq
        frame = msgpack.packb([out_seq, kind, n, data], use_bin_type=True)
        s.put(f"switchboard/{h}/conn/{cid}/c", frame, congestion_control=BLOCK)
        out_seq += 1

    for m in messages:
        send(0, 0, m.encode())
        while True:
            seq, kind, n, data = msgpack.unpackb(sub.recv().payload.to_bytes())
            assert seq == in_seq, f"frame {seq}, expected {in_seq}"
            in_seq += 1
            if kind == 0:
                taken += len(data)
                send(1, taken, b"")
                print(f"reply: {data.decode()}", flush=True)
                break
            if kind == 2:
                print(f"closed: {n}", flush=True)
                return
    send(2, 0, b"")
    token.undeclare()


def main():
    endpoint, host, kind, name, *rest = sys.argv[1:]
    s = open_session(endpoint)
    try:
        if not wait_for_gateway(s, host, time.monotonic() + 10):
            sys.exit(2)
        if kind == "mailslot":
            mailslot(s, host, name, rest[0])
        else:
            pipe(s, host, name, rest)
    finally:
        s.close()


if __name__ == "__main__":
    main()
