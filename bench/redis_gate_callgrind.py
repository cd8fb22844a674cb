#!/usr/bin/env python3
"""Instructions that redis-server executes per EVALSHA of a gate script.

A rate measured on a shared machine moves by ten points from one round to
the next; the instructions a server executes per operation do not. This
starts redis-server under valgrind's callgrind (unix socket in a temporary
directory, no persistence), fills one pool with 64 sessions through the
script (through gate.lua for the trivial one), then sends 1000 operations of
one kind through each script and reads the instructions the server executed
for them (callgrind_control dumps and zeroes the counters). The same operations go to every script, and
the first script is the baseline of the ratio column.

    bench/redis_gate_callgrind.py [--ops heartbeat|resume|mix] SCRIPT.lua|trivial|floor...
    bench/redis_gate_callgrind.py --print trivial|floor > SCRIPT.lua

  heartbeat  every operation a heartbeat with the client's current token
  resume     every operation an admit of the client's current episode with a
             new request id (G5: resumed)
  mix        one in four a resume or, for one in three of those, a switch
             to another episode; the rest heartbeats

`trivial` is redis_gate_bench's trivial script, `return {'alive', '', '', 1}`;
`floor` is gate.lua with the least a heartbeat can do in front of it, one
HMGET of the fields a heartbeat reads and one HSET of last_seen, and nothing
else. `--print` writes one of them out, say for redis_gate_bench's --also.
The caller's clock advances by 1 ms every 8 operations. Needs valgrind and
redis-server (Debian: valgrind, redis-server).
"""

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

GATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'adapters', 'redis', 'gate.lua')
KEYS = ['turnstile:{p}', 'turnstile:{p}:seen']
CONFIG = ['64', '30000', '15000']  # capacity, ttl, grace
CLIENTS = 64
OPS = 1000
TRIVIAL = "return {'alive', '', '', 1}"
FLOOR_HEARTBEAT = """if ARGV[1] == 'heartbeat' then
  local meta = redis.call('HMGET', KEYS[1], 'now', 'held', 'low', 's:' .. ARGV[7])
  redis.call('HSET', KEYS[1], 'l:' .. ARGV[7], ARGV[3])
  return {'alive', '', '', tonumber(meta[2])}
end
"""


def script_text(name):
    with open(GATE) as f:
        gate = f.read()
    if name == 'trivial':
        return TRIVIAL
    if name == 'floor':
        return FLOOR_HEARTBEAT + gate
    with open(name) as f:
        return f.read()


class Redis:
    """A minimal RESP client over a unix socket, enough for EVALSHA."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.buf = b''

    def call(self, *args):
        out = b'*%d\r\n' % len(args)
        for a in args:
            a = a.encode()
            out += b'$%d\r\n%s\r\n' % (len(a), a)
        self.sock.sendall(out)
        return self.reply()

    def line(self):
        while b'\r\n' not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b'+', b':'):
            return rest.decode()
        if kind == b'-':
            raise RuntimeError(rest.decode())
        if kind == b'$':
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            value, self.buf = self.buf[:n], self.buf[n + 2:]
            return value.decode()
        if kind == b'*':
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError('unexpected reply ' + line.decode())


def main(argv):
    if len(argv) == 2 and argv[0] == '--print' and argv[1] in ('trivial', 'floor'):
        sys.stdout.write(script_text(argv[1]))
        return 0
    ops = 'heartbeat'
    if len(argv) >= 2 and argv[0] == '--ops':
        ops, argv = argv[1], argv[2:]
    if ops not in ('heartbeat', 'resume', 'mix') or not argv:
        print(__doc__.strip().split('\n\n')[2], file=sys.stderr)
        return 2
    for tool in ('valgrind', 'callgrind_control', 'redis-server'):
        if shutil.which(tool) is None:
            print('%s is not installed' % tool, file=sys.stderr)
            return 2

    work = tempfile.mkdtemp()
    path = os.path.join(work, 'redis.sock')
    server = subprocess.Popen(
        ['valgrind', '--tool=callgrind', '--callgrind-out-file=' + work + '/cg.%p', 'redis-server', '--port', '0',
         '--unixsocket', path, '--save', '', '--appendonly', 'no', '--dir', work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if os.path.exists(path):
                break
            time.sleep(0.05)
        redis = Redis(path)

        def executed():
            """Instructions since the last call (a dump zeroes the counters)."""
            subprocess.run(['callgrind_control', '-d', str(server.pid)], capture_output=True, check=True)
            dumps = sorted(glob.glob(work + '/cg.%d*' % server.pid), key=os.path.getmtime)
            with open(dumps[-1]) as dump:
                total = int(re.search(r'^summary: (\d+)', dump.read(), re.M).group(1))
            for dump in dumps:
                os.remove(dump)
            return total

        gate_sha = redis.call('SCRIPT', 'LOAD', script_text(GATE))
        baseline = None
        print('%-28s %-9s %14s %9s' % ('script', 'ops', 'instr/EVALSHA', 'ratio'))
        for script in argv:
            sha = redis.call('SCRIPT', 'LOAD', script_text(script))
            redis.call('FLUSHALL')
            # The script fills its own pool (the trivial one cannot), so that
            # the pool is laid out as that script lays it out.
            fill_sha = gate_sha if script == 'trivial' else sha
            tokens = []
            for c in range(CLIENTS):
                reply = redis.call('EVALSHA', fill_sha, '2', *KEYS, 'admit', 'caller', '1000', *CONFIG, 'c%d' % c,
                                   'tt1:1:1', 'r0', '1000')
                tokens.append(reply[1])

            def run(base):
                for i in range(OPS):
                    c = (i * 7) % CLIENTS
                    now = str(base + i // 8)
                    admit = ops == 'resume' or (ops == 'mix' and i % 4 == 0)
                    if admit:
                        episode = 'tt1:1:%d' % (2 + i % 5) if ops == 'mix' and i % 12 == 0 else 'tt1:1:1'
                        reply = redis.call('EVALSHA', sha, '2', *KEYS, 'admit', 'caller', now, *CONFIG, 'c%d' % c,
                                           episode, 'r%d-%d' % (base, i), now)
                        if reply[1]:
                            tokens[c] = reply[1]
                    else:
                        redis.call('EVALSHA', sha, '2', *KEYS, 'heartbeat', 'caller', now, *CONFIG, 'c%d' % c,
                                   tokens[c])

            run(2000)  # warm-up: the script's strings and the server's buffers
            executed()
            run(3000)
            per_op = executed() / OPS
            if baseline is None:
                baseline = per_op
            print('%-28s %-9s %14.0f %8.2fx' % (os.path.basename(script), ops, per_op, per_op / baseline), flush=True)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
