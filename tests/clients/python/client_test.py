"""Calls a running Tradewatch stack through the Python client buf.gen.yaml generates.

Run by `make clients-test`, which generates gen/python, starts the stack with the
demo data and sets TRADEWATCH_TARIFF, TRADEWATCH_DISPUTE and TRADEWATCH_RELATIONS to host:port. Every
check reads a value the service computed; a failure exits non-zero.
"""

import os
import sys
import unittest
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "gen", "python"))

import grpc  # noqa: E402
from google.api import field_behavior_pb2  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from tradewatch.common.v1 import common_pb2  # noqa: E402
from tradewatch.dispute.v1 import dispute_pb2, dispute_pb2_grpc  # noqa: E402
from tradewatch.relations.v1 import relations_pb2, relations_pb2_grpc  # noqa: E402
from tradewatch.tariff.v1 import tariff_pb2, tariff_pb2_grpc  # noqa: E402


def reason(name: int) -> str:
    """The ErrorInfo.reason string of an ErrorReason constant."""
    return common_pb2.ErrorReason.Name(name).removeprefix("ERROR_REASON_")


def details(err: grpc.RpcError):
    """The ErrorInfo and BadRequest a refusal carries."""
    status = rpc_status.from_call(err)
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    for detail in status.details if status else []:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
    return info, bad


class TariffClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.channel = grpc.insecure_channel(os.environ["TRADEWATCH_TARIFF"])
        cls.tariff = tariff_pb2_grpc.TariffServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()

    def test_resolves_the_duty_on_a_chinese_electric_car_in_january_2025(self):
        answer = self.tariff.ResolveDuty(
            tariff_pb2.ResolveDutyRequest(
                importing_economy="CAN",
                origin_economy="CHN",
                hs_code="8703.80.00",
                imported_on="2025-01-15",
                customs_value=common_pb2.Money(currency_code="CAD", amount="40000.00"),
            ),
            timeout=10,
        )
        self.assertEqual(answer.total_duty.amount, "42440.00")
        self.assertEqual(answer.effective_rate_percent, "106.1")
        self.assertIn("SOR/2024-187", [line.reference for line in answer.lines])
        self.assertTrue(answer.explanations)

    def test_creates_and_reads_back_a_measure_ignoring_output_only_fields(self):
        measure = tariff_pb2.TariffMeasure(
            reference=f"PY-{uuid.uuid4()}",
            title="Surtax on test widgets",
            imposing_economy="CAN",
            target_economies=["CHN"],
            kind=tariff_pb2.MEASURE_KIND_SURTAX,
            hs_codes=["9503"],
            ad_valorem_percent="12.5",
            effective_from="2030-01-01",
            status=tariff_pb2.MEASURE_STATUS_REVOKED,
            note="written by the generated Python client",
        )
        created = self.tariff.CreateMeasure(
            tariff_pb2.CreateMeasureRequest(measure=measure, request_id=str(uuid.uuid4())), timeout=10
        ).measure
        self.assertEqual(created.status, tariff_pb2.MEASURE_STATUS_ANNOUNCED)
        read = self.tariff.GetMeasure(tariff_pb2.GetMeasureRequest(id=created.id), timeout=10).measure
        self.assertEqual((read.reference, read.ad_valorem_percent, read.note), (measure.reference, "12.5", measure.note))
        self.assertTrue(read.etag and read.HasField("create_time"))

    def test_a_full_quota_and_a_bad_field_are_refused_with_catalogue_reasons(self):
        listed = self.tariff.ListMeasures(
            tariff_pb2.ListMeasuresRequest(imposing_economy="CAN", kind=tariff_pb2.MEASURE_KIND_SURTAX), timeout=10
        )
        with self.assertRaises(grpc.RpcError) as caught:
            self.tariff.RecordQuotaUsage(tariff_pb2.RecordQuotaUsageRequest(id=listed.measures[0].id, quantity="1"))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        info, _ = details(caught.exception)
        self.assertEqual((info.domain, info.reason), ("tradewatch", reason(common_pb2.ERROR_REASON_NOT_A_QUOTA)))

        with self.assertRaises(grpc.RpcError) as caught:
            self.tariff.ResolveDuty(
                tariff_pb2.ResolveDutyRequest(importing_economy="CAN", origin_economy="CHN", hs_code="870380")
            )
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        info, bad = details(caught.exception)
        self.assertEqual(info.reason, reason(common_pb2.ERROR_REASON_INVALID_ARGUMENT))
        self.assertEqual(
            sorted(v.field for v in bad.field_violations), ["customs_value", "imported_on"]
        )

    def test_field_behavior_is_readable_from_the_generated_descriptors(self):
        field = tariff_pb2.TariffMeasure.DESCRIPTOR.fields_by_name["status"]
        behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
        self.assertEqual(list(behaviors), [field_behavior_pb2.OUTPUT_ONLY])


class DisputeClient(unittest.TestCase):
    def test_lists_the_canola_dispute_and_its_timeline(self):
        with grpc.insecure_channel(os.environ["TRADEWATCH_DISPUTE"]) as channel:
            disputes = dispute_pb2_grpc.DisputeServiceStub(channel)
            listed = disputes.ListDisputes(dispute_pb2.ListDisputesRequest(complainant="CAN", hs_code="1205"), timeout=10)
            ds589 = next(d for d in listed.disputes if d.reference == "WT/DS589")
            events = disputes.ListDisputeEvents(dispute_pb2.ListDisputeEventsRequest(dispute_id=ds589.id), timeout=10)
            stages = [e.to_stage for e in events.events if e.kind == dispute_pb2.DISPUTE_EVENT_KIND_STAGE_CHANGED]
            self.assertEqual(stages[-1], dispute_pb2.DISPUTE_STAGE_LAPSED)
            self.assertEqual(ds589.stage, dispute_pb2.DISPUTE_STAGE_LAPSED)


class RelationsClient(unittest.TestCase):
    def test_the_canada_china_brief_of_march_2026(self):
        with grpc.insecure_channel(os.environ["TRADEWATCH_RELATIONS"]) as channel:
            relations = relations_pb2_grpc.RelationsServiceStub(channel)
            brief = relations.GetBilateralBrief(
                relations_pb2.GetBilateralBriefRequest(economy_a="CAN", economy_b="CHN", on="2026-03-15"), timeout=10
            ).brief
            for section in (brief.measures, brief.disputes, brief.sessions, brief.commitments):
                self.assertEqual(section.status, relations_pb2.SECTION_STATUS_OK)
            self.assertIn("MOFCOM-2026-AD-CANOLA-FINAL", [m.measure.reference for m in brief.measures.measures])
            self.assertEqual(
                sorted(d.dispute.reference for d in brief.disputes.disputes), ["WT/DS627", "WT/DS636"]
            )
            meal = next(c for c in brief.commitments.commitments if c.commitment.description.startswith("Suspend the additional 100%"))
            self.assertTrue(meal.overdue)
            self.assertEqual(meal.worth.duty_before.amount, "967050000.00")
            self.assertEqual(meal.worth.duty_after.amount, "46050000.00")


if __name__ == "__main__":
    unittest.main(verbosity=2)
