"""How close a `switchboard serial pair` paces bytes to the line's time.

pyserial on both ends (RTS/CTS on, a reader thread); prints the time taken
and its ratio to the line time (10 bits a byte at 8N1).

    switchboard serial pair > ends.txt &   # prints the two ends
    read A B < ends.txt
    target/python-venv/bin/python python/serial_pace.py $A $B 115200 9600
"""

import sys
import threading
import time

import serial


def main():
    a_path, b_path, baud, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    a = serial.Serial(a_path, baud, timeout=10, rtscts=True)
    b = serial.Serial(b_path, baud, timeout=10, rtscts=True)
    data = bytes(i % 256 for i in range(n))
    got = []
    start = time.monotonic()
    reader = threading.Thread(target=lambda: got.append(b.read(n)))
    reader.start()
    a.write(data)
    reader.join()
    took = time.monotonic() - start
    assert got[0] == data, (len(got[0]), n)
    line = n * 10 / baud
    print("%d B at %d baud: %.3f s (line time %.3f s, ratio %.2f)" % (n, baud, took, line, took / line))


if __name__ == "__main__":
    main()
