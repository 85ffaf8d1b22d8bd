"""Base class of the PTF tests: a fresh pipeline on a real switch per test.

The runner (ptf_tests/runner.py) starts the switches and passes their
addresses as test parameters; each test pushes the program again (which
empties every table, counter and meter), installs its own entries through
the same builders the controller uses (controller/pipeline.py), and checks
packets on the veths.
"""

import ptf
from ptf import testutils
from ptf.base_tests import BaseTest

from controller.p4rt import SwitchConnection
from controller.pipeline import lc_pipeline, npe_pipeline
from controller.thrift_api import ThriftClient

PIPELINES = {}


class SwitchTest(BaseTest):
    """A test against one switch: ``program`` is "npe" or "lc"."""

    program = None
    device = None

    def setUp(self):
        BaseTest.setUp(self)
        self.dataplane = ptf.dataplane_instance
        self.dataplane.flush()
        if self.program not in PIPELINES:
            PIPELINES[self.program] = {"npe": npe_pipeline, "lc": lc_pipeline}[self.program]()
        self.sw = SwitchConnection(testutils.test_param_get(f"{self.program}_grpc"),
                                   PIPELINES[self.program])
        self.sw.set_pipeline()
        self._thrift = None

    def tearDown(self):
        self.sw.close()
        if self._thrift:
            self._thrift.close()
        BaseTest.tearDown(self)

    @property
    def thrift(self) -> ThriftClient:
        if self._thrift is None:
            self._thrift = ThriftClient(port=testutils.test_param_get(f"{self.program}_thrift"))
        return self._thrift

    def send(self, port, pkt, count=1):
        testutils.send_packet(self, (self.device, port), pkt, count)

    def expect(self, pkt, port):
        testutils.verify_packet(self, pkt, (self.device, port))

    def expect_nothing_else(self):
        testutils.verify_no_other_packets(self, self.device)

    def receive_all(self, timeout=0.5):
        """Every packet the switch emits until it is quiet, as (port, bytes)."""
        out = []
        while True:
            res = testutils.dp_poll(self, self.device, timeout=timeout)
            if not isinstance(res, self.dataplane.PollSuccess):
                return out
            out.append((res.port, res.packet))

    def drops(self, counter, reason) -> int:
        return self.sw.read_counter(counter, reason).packets
