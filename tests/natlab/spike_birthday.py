#!/usr/bin/env python3
"""Research helper for birthday punching in the NAT lab (Phase 9 spike, not a CTest test).

Modes:
  hard  - runs in the hard-NAT host: K non-blocking connects to the easy side's public
          endpoint from K local ports, optionally with a low IP_TTL restored after the SYN,
          optionally with a listener on each of those ports (then the connects are closed at
          once: only the conntrack mappings they made stay).
  easy  - runs in the easy-NAT host: M connects from ONE shared port (SO_REUSEADDR +
          SO_REUSEPORT, one socket per guess) to random ports of the hard NAT's address,
          paced over --pace seconds, each guess closed after --life seconds.
  run   - runs in the root namespace: the trial loop (spawns hard/easy with ip netns exec,
          reads nft counters and conntrack of the routers), one JSON line per trial.
  ttlscan - which TTL opens a mapping at the hard NAT but does not reach the easy NAT.
  table - the summary table of one or more result files (markdown).

Every sending loop is bounded: K <= 512, M <= 4096, trials <= 40, trial window <= 10 s.
Logs go to stderr; the JSON results to stdout or --out.
"""
import argparse
import errno
import json
import math
import os
import random
import resource
import selectors
import socket
import subprocess
import sys
import time

K_MAX, M_MAX, TRIALS_MAX, WINDOW_MAX = 512, 4096, 40, 10.0
PORT_LO, PORT_HI = 1024, 65535  # Linux masquerade's range for source ports >= 1024


def log(*a):
    print("spike:", *a, file=sys.stderr, flush=True)


def wait_until(t):
    d = t - time.time()
    if d > 0:
        time.sleep(d)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def reuse_sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.setblocking(False)
    return s


def exchange(s, mine, deadline):
    """Send one byte on the winner and wait (bounded) for the other side's byte."""
    try:
        s.setblocking(True)
        s.settimeout(max(0.05, deadline - time.time()))
        s.sendall(mine)
        return len(s.recv(1)) == 1
    except OSError:
        return False


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# ------------------------------------------------------------------ hard side

def cmd_hard(a):
    k = min(a.k, K_MAX)
    raise_nofile(2 * k + 64)
    tip, tport = a.target.rsplit(":", 1)
    tport = int(tport)
    sel = selectors.DefaultSelector()
    conns, listeners, errs = {}, [], {}
    first_err = {}
    wait_until(a.start)
    t0 = time.time()
    for _ in range(k):
        c = reuse_sock()
        c.bind(("0.0.0.0", 0))
        port = c.getsockname()[1]
        if a.listen:
            l = reuse_sock()
            l.bind(("0.0.0.0", port))
            l.listen(4)
            listeners.append(l)
            sel.register(l, selectors.EVENT_READ, ("listener", port))
        if a.ttl:
            c.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, a.ttl)
        c.connect_ex((tip, tport))  # the SYN leaves inside connect()
        if a.ttl and a.restore:
            c.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, a.restore)
        if a.listen:
            c.close()  # no packet in SYN_SENT; the NAT mapping stays
        else:
            conns[c.fileno()] = c
            sel.register(c, selectors.EVENT_WRITE, ("connect", port))
    t_sent = time.time() - t0
    deadline = t0 + min(a.window, WINDOW_MAX)
    win = None
    while time.time() < deadline and win is None:
        for key, _ in sel.select(timeout=max(0.0, min(0.05, deadline - time.time()))):
            kind, port = key.data
            s = key.fileobj
            if kind == "listener":
                try:
                    ns, peer = s.accept()
                except OSError:
                    continue
                win = (ns, kind, port, peer)
                break
            e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e == 0:
                try:
                    peer = s.getpeername()
                except OSError:
                    peer = None
                if peer:
                    win = (s, kind, port, peer)
                    break
                continue
            name = errno.errorcode.get(e, str(e))
            errs[name] = errs.get(name, 0) + 1
            first_err.setdefault(name, round(time.time() - t0, 3))
            sel.unregister(s)
            conns.pop(s.fileno(), None)
            s.close()
    res = {"side": "hard", "k": k, "ttl": a.ttl, "restore": a.restore, "listen": a.listen,
           "send_s": round(t_sent, 4), "errors": errs, "first_err_s": first_err,
           "alive_at_end": len(conns)}
    if win:
        s, kind, port, peer = win
        res.update(won=True, t_s=round(time.time() - t0, 4), via=kind, lport=port,
                   peer="%s:%d" % peer)
        # everything else closed at once, then the byte exchange on the winner
        close_all([c for c in conns.values() if c is not s] + [l for l in listeners if l is not s])
        res["data_ok"] = exchange(s, b"H", time.time() + 0.5)
        s.close()
    else:
        res["won"] = False
        close_all(list(conns.values()) + listeners)
    print(json.dumps(res), flush=True)


# ------------------------------------------------------------------ easy side

def cmd_easy(a):
    m = min(a.m, M_MAX)
    raise_nofile(m + 64)
    rng = random.Random(a.seed)
    if a.order == "low-first":
        # Linux masquerade random picks min + (random u16 % 64512): ports 1024-2047 come up
        # twice as often as the others (measured), so guess those first
        low = list(range(PORT_LO, 2048))
        rng.shuffle(low)
        guesses = (low + rng.sample(range(2048, PORT_HI + 1), max(0, m - len(low))))[:m]
    else:
        guesses = rng.sample(range(PORT_LO, PORT_HI + 1), m)
    sel = selectors.DefaultSelector()
    lst = reuse_sock()
    lst.bind(("0.0.0.0", a.port))
    lst.listen(16)
    sel.register(lst, selectors.EVENT_READ, ("listener", -1, 0.0))
    live, errs = {}, {}
    wait_until(a.start)
    t0 = time.time()
    deadline = t0 + min(a.window, WINDOW_MAX)
    interval = a.pace / m if m else 0
    i, win, maxlive, closed_by_life = 0, None, 0, 0
    while time.time() < deadline and win is None:
        now = time.time()
        while i < m and now >= t0 + i * interval:
            s = reuse_sock()
            s.bind(("0.0.0.0", a.port))
            s.connect_ex((a.target, guesses[i]))
            live[s.fileno()] = (s, now)
            sel.register(s, selectors.EVENT_WRITE, ("guess", i, now))
            i += 1
        maxlive = max(maxlive, len(live))
        # a guess unanswered after --life is a miss: close it before it retransmits
        for fd, (s, ts) in list(live.items()):
            if now - ts > a.life:
                sel.unregister(s)
                s.close()
                del live[fd]
                closed_by_life += 1
        nxt = t0 + i * interval if i < m else deadline
        to = max(0.0, min(0.01, nxt - time.time(), deadline - time.time()))
        for key, _ in sel.select(timeout=to):
            kind, idx, ts = key.data
            s = key.fileobj
            if kind == "listener":
                try:
                    ns, peer = s.accept()
                except OSError:
                    continue
                win = (ns, kind, -1, peer)
                break
            e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e == 0:
                try:
                    peer = s.getpeername()
                except OSError:
                    continue
                win = (s, kind, idx, peer)
                break
            name = errno.errorcode.get(e, str(e))
            errs[name] = errs.get(name, 0) + 1
            sel.unregister(s)
            live.pop(s.fileno(), None)
            s.close()
    res = {"side": "easy", "m": m, "sent": i, "errors": errs, "max_live": maxlive,
           "closed_by_life": closed_by_life}
    if win:
        s, kind, idx, peer = win
        res.update(won=True, t_s=round(time.time() - t0, 4), via=kind, guess_index=idx,
                   peer="%s:%d" % peer)
        close_all([v[0] for v in live.values() if v[0] is not s] + ([lst] if s is not lst else []))
        res["data_ok"] = exchange(s, b"E", time.time() + 0.5)
        s.close()
    else:
        res["won"] = False
        close_all([v[0] for v in live.values()] + [lst])
    print(json.dumps(res), flush=True)


# ------------------------------------------------------------------ orchestration (root ns)

def nsexec(ns, *cmd, **kw):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          timeout=kw.get("timeout", 10))


def counters(ns):
    r = nsexec(ns, "nft", "-j", "list", "counters")
    out = {}
    try:
        for o in json.loads(r.stdout).get("nftables", []):
            c = o.get("counter")
            if c:
                out["%s.%s" % (c["table"], c["name"])] = c["packets"]
    except (ValueError, KeyError):
        pass
    return out


def conntrack(ns):
    """Entries of /proc/net/nf_conntrack as dicts (orig and reply tuples, state, timeout)."""
    r = nsexec(ns, "cat", "/proc/net/nf_conntrack")
    rows = []
    for line in r.stdout.splitlines():
        t = line.split()
        if len(t) < 6 or t[2] != "tcp":
            continue
        kv = [x.split("=", 1) for x in t if "=" in x]
        orig = dict(kv[:4])
        reply = dict(kv[4:8]) if len(kv) >= 8 else {}
        rows.append({"timeout": int(t[4]), "state": t[5], "orig": orig, "reply": reply,
                     "unreplied": "[UNREPLIED]" in t})
    return rows


def diff(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in b if b.get(k, 0) - a.get(k, 0)}


def cmd_run(a):
    trials = min(a.trials, TRIALS_MAX)
    k, m = min(a.k, K_MAX), min(a.m, M_MAX)
    window = min(a.window, WINDOW_MAX - 1)
    me = os.path.abspath(__file__)
    routers = a.routers.split(",")
    out = open(a.out, "a") if a.out else sys.stdout
    for t in range(trials):
        port = a.port_base + t
        before = {r: counters(a.ns + r) for r in routers}
        start = time.time() + 0.3
        hard = ["ip", "netns", "exec", a.ns + "hh", sys.executable, me, "hard",
                "--target", "%s:%d" % (a.easy_ip, port), "--k", str(k), "--ttl", str(a.ttl),
                "--restore", str(a.restore), "--start", repr(start), "--window", str(window)]
        if a.listen:
            hard.append("--listen")
        easy = ["ip", "netns", "exec", a.ns + "he", sys.executable, me, "easy",
                "--port", str(port), "--target", a.hard_ip, "--m", str(m),
                "--pace", str(a.pace), "--life", str(a.life),
                "--start", repr(start + a.easy_delay), "--window", str(window),
                "--seed", str(a.seed * 1000 + t), "--order", a.order]
        ph = subprocess.Popen(hard, stdout=subprocess.PIPE, text=True)
        pe = subprocess.Popen(easy, stdout=subprocess.PIPE, text=True)
        res = {"run": a.name, "trial": t, "port": port, "k": k, "m": m, "ttl": a.ttl,
               "restore": a.restore, "listen": a.listen, "easy_policy": a.easy_policy,
               "pace": a.pace, "life": a.life, "easy_delay": a.easy_delay, "order": a.order}
        for side, p in (("hard", ph), ("easy", pe)):
            try:
                o, _ = p.communicate(timeout=window + 3)
                res[side] = json.loads(o.strip().splitlines()[-1]) if o.strip() else {}
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                p.kill()
                p.wait()
                res[side] = {"won": False, "error": "helper timeout/garbage"}
        after = {r: counters(a.ns + r) for r in routers}
        res["ctr"] = {r: diff(before[r], after[r]) for r in routers}
        # the hard NAT's mappings towards this trial's easy endpoint
        ct = [e for e in conntrack(a.ns + "ra")
              if e["orig"].get("dst") == a.easy_ip and e["orig"].get("dport") == str(port)]
        res["ra_map"] = {"n": len(ct), "states": {}, "pub_ports": [int(e["reply"]["dport"]) for e in ct if e["reply"]],
                         "min_timeout": min([e["timeout"] for e in ct], default=None)}
        for e in ct:
            res["ra_map"]["states"][e["state"]] = res["ra_map"]["states"].get(e["state"], 0) + 1
        res["ok"] = bool(res["hard"].get("won") and res["easy"].get("won")
                         and res["hard"].get("data_ok") and res["easy"].get("data_ok"))
        print(json.dumps(res), file=out, flush=True)
        log("%s trial %d: ok=%s hard=%s easy=%s t=%s maps=%d" % (
            a.name, t, res["ok"], res["hard"].get("via"), res["easy"].get("via"),
            res["easy"].get("t_s"), res["ra_map"]["n"]))
        time.sleep(0.2)
    if a.lifetime_check and a.out:
        # how long the first trial's mappings live: still there, and their remaining timeout
        ct = [e for e in conntrack(a.ns + "ra")
              if e["orig"].get("dst") == a.easy_ip and e["orig"].get("dport") == str(a.port_base)]
        print(json.dumps({"run": a.name, "lifetime": {"trial0_entries": len(ct),
              "states": sorted({e["state"] for e in ct}),
              "timeouts": sorted({e["timeout"] for e in ct})[:5]},
              "syn_sent_timeout": nsexec(a.ns + "ra", "sysctl", "-n",
                                         "net.netfilter.nf_conntrack_tcp_timeout_syn_sent").stdout.strip()}),
              file=out, flush=True)


def cmd_ttlscan(a):
    routers = a.routers.split(",")
    me = os.path.abspath(__file__)
    res = []
    for i, ttl in enumerate(range(1, 6)):
        port = a.port_base + i
        before = {r: counters(a.ns + r) for r in routers}
        hard = ["ip", "netns", "exec", a.ns + "hh", sys.executable, me, "hard",
                "--target", "%s:%d" % (a.easy_ip, port), "--k", "4", "--ttl", str(ttl),
                "--restore", "0", "--start", repr(time.time() + 0.1), "--window", "0.6"]
        o = subprocess.run(hard, capture_output=True, text=True, timeout=5).stdout
        after = {r: counters(a.ns + r) for r in routers}
        ct = [e for e in conntrack(a.ns + "ra")
              if e["orig"].get("dst") == a.easy_ip and e["orig"].get("dport") == str(port)]
        res.append({"ttl": ttl, "ra_mappings": len(ct),
                    "ctr": {r: diff(before[r], after[r]) for r in routers},
                    "hard": json.loads(o) if o.strip() else {}})
    print(json.dumps({"ttlscan": res}))


def p_hit(r, k, m):
    """Probability that M distinct guesses in R ports hit at least one of K mappings."""
    if m > r - k:
        return 1.0
    lg = math.lgamma
    return 1.0 - math.exp(lg(r - k + 1) - lg(r - k - m + 1) + lg(r - m + 1) - lg(r + 1))


def p_lowfirst(k, m):
    """The same under Linux's modulo bias (ports 1024-2047 twice as likely), guessing those first."""
    c = (2 * min(m, 1024) + max(0, m - 1024)) / 65536.0
    return 1.0 - (1.0 - c) ** k


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(math.ceil(q * len(xs))) - 1)]


def cmd_table(a):
    runs, ports, extra = {}, [], []
    for f in a.files:
        for line in open(f):
            r = json.loads(line)
            if "trial" in r:
                runs.setdefault(r["run"], []).append(r)
                if r["ra_map"]["pub_ports"] and not r["listen"]:
                    ports += r["ra_map"]["pub_ports"]
            else:
                extra.append(r)
    R = PORT_HI - PORT_LO + 1
    print("| run | easy NAT | TTL | hard side | K/M | trials | direct | expected | t first est. p50 / max (s, from easy start) | SYNs/trial hard+easy (at NATs) | hard SYNs reaching easy NAT | RSTs from easy NAT | hard sockets killed (ICMP/RST) | winner: guess / hard SYN / listener |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, rs in runs.items():
        r0 = rs[0]
        n = len(rs)
        ok = sum(r["ok"] for r in rs)
        ts = [r["easy"]["t_s"] for r in rs if r["ok"] and "t_s" in r["easy"]]
        syn = [r["ctr"]["ra"].get("spike.syn_out", 0) + r["ctr"]["rb"].get("spike.syn_out", 0) for r in rs]
        hsyn = [r["ctr"]["rb"].get("spike.syn_in", 0) for r in rs]
        rst = [r["ctr"]["rb"].get("spike.rst_out", 0) for r in rs]
        icmp = [r["hard"].get("errors", {}).get("EHOSTUNREACH", 0) for r in rs]
        refused = [r["hard"].get("errors", {}).get("ECONNREFUSED", 0) for r in rs]
        wg = sum(1 for r in rs if r["ok"] and r["ctr"]["rb"].get("spike.synack_in", 0) > 0 and r["hard"].get("via") == "connect")
        wh = sum(1 for r in rs if r["ok"] and r["ctr"]["rb"].get("spike.syn_in_fwd", 0) > 0)
        wl = sum(1 for r in rs if r["ok"] and r["hard"].get("via") == "listener")
        mean = lambda xs: sum(xs) / len(xs) if xs else 0
        print("| %s | %s | %s | %s | %d/%d | %d | %d/%d (%.0f%%) | %.1f%% | %s / %s | %.0f | %.0f | %.0f | %.1f / %.1f | %d / %d / %d |" % (
            name, r0["easy_policy"], "%d->%d" % (r0["ttl"], r0["restore"]) if r0["ttl"] else "64",
            "listen+close" if r0["listen"] else "connect", r0["k"], r0["m"], n, ok, n,
            100.0 * ok / n, 100 * (p_hit(R, r0["k"], r0["m"]) if r0.get("order", "random") == "random"
                                   else p_lowfirst(r0["k"], r0["m"])),
            pct(ts, 0.5), max(ts) if ts else None, mean(syn), mean(hsyn), mean(rst),
            mean(icmp), mean(refused), wg, wh, wl))
    if ports:
        bins = [0] * 16
        w = R / 16
        for p in ports:
            bins[min(15, int((p - PORT_LO) / w))] += 1
        exp = len(ports) / 16
        chi2 = sum((b - exp) ** 2 / exp for b in bins)
        print("\nmasquerade random public ports: n=%d min=%d max=%d mean=%.0f (uniform: %.0f) "
              "below 1024: %d; chi2 over 16 bins = %.1f (15 dof; 5%% critical 25.0)" % (
                  len(ports), min(ports), max(ports), sum(ports) / len(ports),
                  (PORT_LO + PORT_HI) / 2, sum(p < 1024 for p in ports), chi2))
    for e in extra:
        print("\n" + json.dumps(e))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    h = sp.add_parser("hard")
    h.add_argument("--target", required=True)
    h.add_argument("--k", type=int, default=256)
    h.add_argument("--ttl", type=int, default=0)
    h.add_argument("--restore", type=int, default=64)
    h.add_argument("--listen", action="store_true")
    h.add_argument("--start", type=float, default=0)
    h.add_argument("--window", type=float, default=3.0)
    e = sp.add_parser("easy")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--target", required=True)
    e.add_argument("--m", type=int, default=1024)
    e.add_argument("--pace", type=float, default=1.0)
    e.add_argument("--life", type=float, default=0.6)
    e.add_argument("--start", type=float, default=0)
    e.add_argument("--window", type=float, default=3.0)
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("--order", choices=("random", "low-first"), default="random")
    for name in ("run", "ttlscan"):
        r = sp.add_parser(name)
        r.add_argument("--ns", required=True, help="namespace prefix")
        r.add_argument("--routers", default="ra,rb,ix1,ix2")
        r.add_argument("--hard-ip", default="203.0.113.10")
        r.add_argument("--easy-ip", default="198.51.100.20")
        r.add_argument("--port-base", type=int, default=20000)
        if name == "run":
            r.add_argument("--name", required=True)
            r.add_argument("--easy-policy", default="drop")
            r.add_argument("--trials", type=int, default=20)
            r.add_argument("--k", type=int, default=256)
            r.add_argument("--m", type=int, default=1024)
            r.add_argument("--ttl", type=int, default=0)
            r.add_argument("--restore", type=int, default=64)
            r.add_argument("--listen", action="store_true")
            r.add_argument("--pace", type=float, default=1.0)
            r.add_argument("--life", type=float, default=0.6)
            r.add_argument("--easy-delay", type=float, default=0.05)
            r.add_argument("--window", type=float, default=3.0)
            r.add_argument("--seed", type=int, default=1)
            r.add_argument("--lifetime-check", action="store_true")
            r.add_argument("--order", choices=("random", "low-first"), default="random")
            r.add_argument("--out")
    t = sp.add_parser("table")
    t.add_argument("files", nargs="+")
    a = ap.parse_args()
    {"hard": cmd_hard, "easy": cmd_easy, "run": cmd_run, "ttlscan": cmd_ttlscan,
     "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    main()
