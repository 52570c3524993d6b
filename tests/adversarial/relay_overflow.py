"""The stranger of test_relay_overflow.sh: registers, asks the rendezvous for the victim, takes
the victim's handshake offer from its punch port, and parks a genuine signed initiator shake
with EARLY garbage bytes behind it in the relay. When the victim joins the relay, the server
hands it `relayed`, the signed line and the garbage in one go.

usage: relay_overflow.py SERVER_PORT VICTIM_ID ATTACKER_ID EARLY_BYTES OUT_DIR
Writes OUT_DIR/attacker.json: what happened ({"joined":…, "victim_offer":…, "confirm":…}).
Exits 0 when the attack could be delivered (the relay joined), 1 when not (setup failure)."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, PeerConn, RelayConn, ServerConn, Shake, ep_tuple  # noqa: E402


def main():
    port, victim, me, early, out = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                                     int(sys.argv[4]), sys.argv[5])
    report = {"joined": None, "victim_offer": False, "confirm": None, "error": None}
    ident = Identity(me)
    srv = ServerConn(("127.0.0.1", port))
    w = srv.register(me, ident)
    if not w or w.get("type") != "welcome":
        report["error"] = f"not registered: {w!r}"
        return finish(report, out, 1)
    punch = srv.connect_to(victim)
    if not punch or punch.get("type") != "punch" or not punch.get("relay"):
        report["error"] = f"no punch with a relay: {punch!r}"
        return finish(report, out, 1)
    sh = Shake(ident, me, punch)
    # the victim (responder) offers its shake on every connection to its punch port, with the
    # one ephemeral key of this punch: enough to sign an answer that verifies on the relay too
    # (listen --forward listens all the time and closes a connection that comes before its own
    # punch order: dial again until the offer comes, for up to 8 s)
    end = time.time() + 8
    while True:
        direct = PeerConn(ep_tuple(punch["observed"]))
        offer = direct.line(2.0)
        if (offer and offer.get("type") == "shake") or time.time() >= end:
            break
        direct.close()
        time.sleep(0.1)
    if not offer or offer.get("type") != "shake":
        report["error"] = f"no offer on the punch port: {offer!r}"
        return finish(report, out, 1)
    report["victim_offer"] = True
    answer = sh.answer(offer)
    rl = RelayConn(("127.0.0.1", port), punch["session"], punch["token"])
    # early bytes: the server forwards them right behind the victim's `relayed`
    rl.send(answer + b"X" * early)
    joined = rl.wait(20.0)
    report["joined"] = joined
    if not joined or joined.get("type") != "relayed":
        report["error"] = "the relay did not join"
        return finish(report, out, 1)
    # the victim's offer on the relay, then (if it took our answer) its confirm
    end = time.time() + 10
    while time.time() < end:
        m = rl.line(max(0.05, end - time.time()))
        if m is None:
            break
        if m.get("type") == "confirm":
            report["confirm"] = True
            break
    # give the victim time to act on the garbage, then leave
    rl.recv_some(3.0)
    rl.close()
    direct.close()
    srv.close()
    return finish(report, out, 0)


def finish(report, out, rc):
    with open(os.path.join(out, "attacker.json"), "w") as f:
        json.dump(report, f)
    return rc


if __name__ == "__main__":
    sys.exit(main())
