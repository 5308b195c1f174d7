// Calls a running Tradewatch stack through the TypeScript client buf.gen.yaml
// generates (protoc-gen-es, with Connect-ES speaking gRPC). Run by
// `make clients-test`, which generates gen/ts, compiles it with this file, starts
// the stack with the demo data and sets TRADEWATCH_TARIFF, TRADEWATCH_DISPUTE and
// TRADEWATCH_RELATIONS to host:port.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { ErrorReason } from "../../../gen/ts/tradewatch/common/v1/common_pb.js";
import {
  DisputeEventKind,
  DisputeService,
  DisputeStage,
} from "../../../gen/ts/tradewatch/dispute/v1/dispute_pb.js";
import { RelationsService, SectionStatus } from "../../../gen/ts/tradewatch/relations/v1/relations_pb.js";
import {
  MeasureKind,
  MeasureStatus,
  TariffMeasureSchema,
  TariffService,
} from "../../../gen/ts/tradewatch/tariff/v1/tariff_pb.js";

function endpoint(name: string): string {
  const at = process.env[name];
  assert.ok(at, `${name} names the service to call (host:port)`);
  return `http://${at}`;
}

/** The ErrorInfo.reason string of an ErrorReason constant. */
function reason(value: ErrorReason): string {
  return ErrorReason[value].replace(/^ERROR_REASON_/, "");
}

/** The ErrorInfo a refusal carries, read from its raw google.rpc.ErrorInfo detail. */
function errorInfoText(err: ConnectError): string {
  for (const detail of err.details) {
    if ("type" in detail && detail.type === "google.rpc.ErrorInfo" && detail.value instanceof Uint8Array) {
      return new TextDecoder().decode(detail.value);
    }
  }
  assert.fail(`no ErrorInfo detail in ${err.message}`);
}

const tariff = createClient(TariffService, createGrpcTransport({ baseUrl: endpoint("TRADEWATCH_TARIFF") }));
const disputes = createClient(DisputeService, createGrpcTransport({ baseUrl: endpoint("TRADEWATCH_DISPUTE") }));
const relations = createClient(RelationsService, createGrpcTransport({ baseUrl: endpoint("TRADEWATCH_RELATIONS") }));

describe("the generated TypeScript client", () => {
  test("resolves the duty on a Chinese electric car in January 2025", async () => {
    const answer = await tariff.resolveDuty(
      {
        importingEconomy: "CAN",
        originEconomy: "CHN",
        hsCode: "8703.80.00",
        importedOn: "2025-01-15",
        customsValue: { currencyCode: "CAD", amount: "40000.00" },
      },
      { timeoutMs: 10_000 },
    );
    assert.equal(answer.totalDuty?.amount, "42440.00");
    assert.equal(answer.effectiveRatePercent, "106.1");
    assert.ok(answer.lines.some((line) => line.reference === "SOR/2024-187"));
    assert.ok(answer.explanations.length > 0);
  });

  test("creates a measure and reads it back; output-only fields are ignored", async () => {
    const measure = create(TariffMeasureSchema, {
      reference: `TS-${randomUUID()}`,
      title: "Surtax on test gadgets",
      imposingEconomy: "CAN",
      targetEconomies: ["CHN"],
      kind: MeasureKind.SURTAX,
      hsCodes: ["9504"],
      adValoremPercent: "7.25",
      effectiveFrom: "2030-01-01",
      status: MeasureStatus.REVOKED,
      note: "written by the generated TypeScript client",
    });
    const created = await tariff.createMeasure({ measure, requestId: randomUUID() }, { timeoutMs: 10_000 });
    assert.equal(created.measure?.status, MeasureStatus.ANNOUNCED);
    const read = await tariff.getMeasure({ id: created.measure?.id ?? "" }, { timeoutMs: 10_000 });
    assert.equal(read.measure?.reference, measure.reference);
    assert.equal(read.measure?.adValoremPercent, "7.25");
    assert.equal(read.measure?.note, measure.note);
    assert.ok(read.measure?.etag);
  });

  test("a usage on a measure without a quota is FAILED_PRECONDITION NOT_A_QUOTA", async () => {
    const listed = await tariff.listMeasures({ imposingEconomy: "CAN", kind: MeasureKind.SURTAX });
    const id = listed.measures[0]?.id;
    assert.ok(id);
    await assert.rejects(tariff.recordQuotaUsage({ id, quantity: "1" }), (err: unknown) => {
      const e = ConnectError.from(err);
      assert.equal(e.code, Code.FailedPrecondition);
      const info = errorInfoText(e);
      assert.ok(info.includes(reason(ErrorReason.NOT_A_QUOTA)), info);
      assert.ok(info.includes("tradewatch"), info);
      return true;
    });
  });

  test("a missing required field is INVALID_ARGUMENT naming it", async () => {
    await assert.rejects(
      tariff.resolveDuty({ importingEconomy: "CAN", originEconomy: "CHN", hsCode: "870380" }),
      (err: unknown) => {
        const e = ConnectError.from(err);
        assert.equal(e.code, Code.InvalidArgument);
        assert.match(e.rawMessage, /imported_on/);
        assert.ok(errorInfoText(e).includes(reason(ErrorReason.INVALID_ARGUMENT)));
        return true;
      },
    );
  });

  test("lists the canola dispute and its timeline", async () => {
    const listed = await disputes.listDisputes({ complainant: "CAN", hsCode: "1205" });
    const ds589 = listed.disputes.find((d) => d.reference === "WT/DS589");
    assert.ok(ds589);
    assert.equal(ds589.stage, DisputeStage.LAPSED);
    const events = await disputes.listDisputeEvents({ disputeId: ds589.id });
    const stages = events.events.filter((e) => e.kind === DisputeEventKind.STAGE_CHANGED).map((e) => e.toStage);
    assert.equal(stages.at(-1), DisputeStage.LAPSED);
  });

  test("the dossier of WT/DS636 cites China's duties and the sessions that took it up", async () => {
    const listed = await disputes.listDisputes({ complainant: "CAN" });
    const ds636 = listed.disputes.find((d) => d.reference === "WT/DS636");
    assert.ok(ds636);
    const { dossier } = await relations.getDisputeDossier({ disputeId: ds636.id }, { timeoutMs: 10_000 });
    assert.equal(dossier?.dispute?.reference, "WT/DS636");
    assert.equal(dossier?.measures?.status, SectionStatus.OK);
    assert.ok(dossier?.measures?.measures.some((m) => m.reference === "CN-CTC-2025-CA-ANNEX2-PORK"));
    assert.ok(dossier?.sessions?.sessions.some((s) => s.title.startsWith("Carney and Xi meet on the margins of APEC")));
  });
});
