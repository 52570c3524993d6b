#!/usr/bin/env python3
"""Drives several cooperating tcpunch-loadgen processes against the instances of a cluster.

One process holds one descriptor per simulated peer, and a process here may hold 20,000: more
peers than that take several load generators. Each one owns a range of peers (--base) and its
pairs, so it times its own introductions; this script starts them (--sync DIR), waits until all
have registered, reads the servers' RSS and Redis's used_memory, then starts each round of
introductions in all of them at once and merges their latencies. One JSON object on stdout.

    multi.py --loadgen PATH --servers H:P,... --pids PID,... --redis-port PORT
             --procs N --peers TOTAL --rate TOTAL_PER_S --intros PER_ROUND
             [--pairs same,cross] [--seconds S]

Bounded: every wait has a deadline, and the load generators are killed (by pid) on the way out.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_info(port, section):
    """INFO SECTION as a dict, spoken over a plain socket (no client library needed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"INFO {section}\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, _, rest = data.partition(b"\r\n")
            if head.startswith(b"$") and len(rest) >= int(head[1:]):
                break
    out = {}
    for line in data.decode(errors="replace").splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


def pct(v, q):
    return v[int((len(v) - 1) * q)] / 1e6 if v else 0.0


def wait_files(paths, procs, deadline, what):
    """Waits until every process has written its file (paths[i] for procs[i])."""
    while True:
        missing = [i for i, f in enumerate(paths) if not os.path.exists(f)]
        if not missing:
            return
        # a process that wrote its last file may exit before the others have written theirs;
        # one gone without its file ends the wait
        gone = [i for i in missing if procs[i].poll() is not None]
        if gone and not os.path.exists(paths[gone[0]]):
            raise RuntimeError(f"{what}: a load generator exited early "
                               f"(status {procs[gone[0]].returncode})")
        if time.time() > deadline:
            raise RuntimeError(f"{what}: timed out")
        time.sleep(0.01)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--servers", required=True)
    ap.add_argument("--pids", required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--redis-pid", type=int, default=0)
    ap.add_argument("--procs", type=int, required=True)
    ap.add_argument("--peers", type=int, required=True)
    ap.add_argument("--rate", required=True, help="per second in all, one or one per round")
    ap.add_argument("--intros", type=int, required=True)
    ap.add_argument("--pairs", default="same,cross")
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--in-flight", type=int, default=256, help="registrations under way per process")
    a = ap.parse_args()

    pids = [int(p) for p in a.pids.split(",")]
    rounds = a.pairs.split(",")
    per = a.peers // a.procs // 2 * 2
    sync = tempfile.mkdtemp(prefix="tcpunch-multi.")
    procs = []
    t_end = time.time() + a.seconds
    result = {"procs": a.procs, "peers": per * a.procs, "instances": len(pids),
              "in_flight": a.in_flight * a.procs}
    try:
        rss0 = [rss_kb(p) for p in pids]
        mem0 = int(redis_info(a.redis_port, "memory")["used_memory"])
        t0 = time.time()
        for i in range(a.procs):
            rates = ",".join(str(max(1, int(x) // a.procs)) for x in a.rate.split(","))
            cmd = [a.loadgen, "-s", a.servers, "-n", str(per), "-r", rates,
                   "-i", str(max(1, a.intros // a.procs)), "--pairs", a.pairs,
                   "--base", str(i * per), "--sync", sync, "-t", str(a.seconds), "--json",
                   "--in-flight", str(a.in_flight)]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE))
        bases = [i * per for i in range(a.procs)]
        wait_files([f"{sync}/ready.{b}" for b in bases], procs, t_end, "registration")
        t_reg = time.time() - t0
        reg = []
        for b in bases:
            with open(f"{sync}/ready.{b}") as fh:
                reg += [int(x) for x in fh if x.strip()]
        reg.sort()
        result.update(reg_p50_ms=round(pct(reg, 0.5), 3), reg_p99_ms=round(pct(reg, 0.99), 3),
                      reg_max_ms=round(pct(reg, 1), 3))
        # the instances announce their registrations to Redis asynchronously: let them finish
        time.sleep(1.0)
        rss1 = [rss_kb(p) for p in pids]
        info = redis_info(a.redis_port, "memory")
        mem1 = int(info["used_memory"])
        keys = redis_info(a.redis_port, "keyspace")
        n = max(1, len(reg))  # per peer registered (the ready files list each one's time)
        result.update(registration_s=round(t_reg, 3),
                      rss_kb=rss1,
                      rss_per_peer_bytes=round((sum(rss1) - sum(rss0)) * 1024 / n),
                      redis_bytes_per_peer=round((mem1 - mem0) / n),
                      redis_used_memory=mem1,
                      redis_keys=keys.get("db0", ""))
        result["rounds"] = []
        offered = a.rate.split(",")
        offered += offered[-1:] * (len(rounds) - len(offered))
        for r, kind in enumerate(rounds):
            c0 = [cpu_s(p) for p in pids]
            rc0 = cpu_s(a.redis_pid) if a.redis_pid else 0
            open(f"{sync}/go.{r}", "w").close()
            g0 = time.time()
            wait_files([f"{sync}/lat-{r}.{b}" for b in bases], procs, t_end, f"round {r} ({kind})")
            secs = time.time() - g0
            c1 = [cpu_s(p) for p in pids]
            rc1 = cpu_s(a.redis_pid) if a.redis_pid else 0
            lat = []
            for f in [f"{sync}/lat-{r}.{b}" for b in bases]:
                with open(f) as fh:
                    lat += [int(x) for x in fh if x.strip()]
            lat.sort()
            result["rounds"].append({
                "pairs": kind, "offered": int(offered[r]), "intros": len(lat), "secs": round(secs, 3),
                "intros_per_s": round(len(lat) / secs) if secs > 0 else 0,
                "p50_ms": round(pct(lat, 0.5), 3), "p99_ms": round(pct(lat, 0.99), 3),
                "max_ms": round(pct(lat, 1), 3),
                "server_cpu": round(sum(c1) / secs - sum(c0) / secs, 3),
                "redis_cpu": round((rc1 - rc0) / secs, 3) if a.redis_pid else None})
        outs = []
        for p in procs:
            out, _ = p.communicate(timeout=max(1, t_end - time.time()))
            # 2: some peers or introductions failed, which the figures count
            if p.returncode not in (0, 2):
                raise RuntimeError(f"a load generator exited with status {p.returncode}")
            outs.append(json.loads(out))
        result["registered"] = sum(o["registered"] for o in outs)
        result["failed"] = sum(o["failed"] for o in outs)
        result["registrations_per_s"] = round(result["registered"] / t_reg) if t_reg > 0 else 0
        result["skipped"] = sum(r["skipped"] for o in outs for r in o["rounds"])
        for i, r in enumerate(result["rounds"]):
            r["failed"] = sum(o["rounds"][i]["failed"] for o in outs)
            r["lost"] = sum(o["rounds"][i]["lost"] for o in outs)
        print(json.dumps(result))
        return 0
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        print(f"multi.py: {e}", file=sys.stderr)
        return 2
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(sync, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
