"""Nothing acknowledged is lost (issue 10): the controller, a process of its
own, is killed with SIGKILL in the middle of bursts of write_fltr from 8
clients of 4 slices, and started again on the same database. Every write
that was answered with code 0 is there, through the API, and the switches
hold exactly what the database says."""

from __future__ import annotations

import threading
import time

from conftest import needs_bmv2
from test_concurrency import (
    CALL_TIMEOUT,
    SWITCH_DEADLINE,
    Answer,
    add_slices,
    assert_switches_match_db,
    filter_args,
    problems,
    router,
    stopped,
    summary,
    wait_switches_match_db,
)

from bench.controlplane import ControllerProcess

pytestmark = needs_bmv2

BURST = 25


def test_acknowledged_writes_survive_kill_9(live_node, tmp_path):
    ctl = ControllerProcess(live_node, tmp_path).start()
    try:
        handles = add_slices(ctl, live_node, 4)
        fpids = {}
        for h in handles:
            with h.lib() as s:
                fpids[h.name] = s.alloc_fastpath(bw=1000, filters=2000, queues=1, buffers=1,
                                                 stats=1)["fpid"]
        clients = [(h, h.api(), k) for h in handles for k in range(2)]
        answers: list[Answer] = []
        stop = threading.Event()

        def burst(h, api, k):
            i = 0
            while not stop.is_set():
                for _ in range(BURST):
                    fid = 1 + k * 1000 + i
                    x = api("write_fltr", **filter_args(h.tag, fpids[h.name], fid))
                    answers.append(x)
                    i += 1
                    if x.problem:             # the controller is gone
                        return
                time.sleep(0.02)

        threads = [threading.Thread(target=burst, args=c, daemon=True) for c in clients]
        for t in threads:
            t.start()
        while len(answers) < 400:
            assert all(t.is_alive() for t in threads), summary(
                problems(answers, set()))
            time.sleep(0.01)
        ctl.kill()                                  # mid-burst: calls are in flight
        stop.set()
        for t in threads:
            t.join(CALL_TIMEOUT + 5)
        acked = [x for x in answers if x.ok]
        assert len(acked) >= 300, f"only {len(acked)} writes acknowledged"
        assert not [x for x in answers if x.code and not x.problem], \
            "writes refused before the kill: " + summary(problems(answers, set()))

        ctl.start()
        apis = {h.name: h.api() for h in handles}
        by_tag = {h.tag: h.name for h in handles}
        lost = []
        for x in acked:
            name = by_tag[int(x.args["key"]["dst_addr"].split(".")[1])]
            got = apis[name]("get_fltr_byfid", fpid=x.args["fpid"], fid=x.args["fid"])
            if not got.ok or got.result["key"] != x.result["key"] or \
                    got.result["result"] != x.result["result"]:
                lost.append(f"slice {name}: {x} -> now {got}")
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged writes lost:\n  " + \
            "\n  ".join(lost[:10])
        assert_switches_match_db(live_node.testbed, ctl.db, "after kill -9 and restart")
        for api in apis.values():
            api.close()
        for _, api, _ in clients:
            api.close()
    finally:
        ctl.stop()


def test_acknowledged_after_a_switch_failure_survive_kill_9(live_node, tmp_path):
    """The NPE stalls and comes back (the controller marks it down, refuses,
    repairs it); what is acknowledged afterwards survives a kill -9 too."""
    ctl = ControllerProcess(live_node, tmp_path).start()
    try:
        (a,) = add_slices(ctl, live_node, 1)
        with a.lib() as s:
            f = router(s)
        api = a.api()
        with stopped(live_node.procs["npe"]):
            x = api("write_fltr", **filter_args(a.tag, f, 20))
            assert x.error == "ESWITCH" and x.seconds < SWITCH_DEADLINE, x
        wait_switches_match_db(live_node.testbed, ctl.db, 20, "after SIGCONT")
        deadline = time.monotonic() + 20
        acked = []
        for fid in range(21, 31):
            while not (x := api("write_fltr", **filter_args(a.tag, f, fid))).ok:
                assert x.error == "ESWITCH" and time.monotonic() < deadline, x
                time.sleep(0.3)
            acked.append(fid)
        ctl.kill()
        ctl.start()
        lost = [fid for fid in acked if not api("get_fltr_byfid", fpid=f, fid=fid).ok]
        assert not lost, f"acknowledged after the NPE came back, lost by kill -9: {lost}"
        assert_switches_match_db(live_node.testbed, ctl.db, "after kill -9 and restart")
        api.close()
    finally:
        ctl.stop()
