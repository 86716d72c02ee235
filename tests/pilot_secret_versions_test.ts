// Copyright 2026 the SPIKE for Deno authors. MIT license.
// What delete and undelete derive from the metadata nexus returns: the
// versions the last delete removed, and what delete reports.
import assert from "node:assert/strict";
import {
  deleteReport,
  lastDeleted,
  type SecretVersions,
  versionsOf,
  versionWords,
} from "../modes/pilot/secret_versions.ts";

const T1 = "2026-05-01T10:00:00.001Z";
const T2 = "2026-05-01T10:00:00.002Z";

function secret(
  current: number,
  deleted: Record<number, string | null>,
): SecretVersions {
  return {
    current,
    versions: Object.entries(deleted).map(([v, t]) => ({
      version: Number(v),
      deletedTime: t,
    })),
  };
}

Deno.test("lastDeleted picks the versions sharing the newest deletion time", () => {
  assert.deepEqual(lastDeleted(secret(1, { 1: null, 2: T1, 3: T1 })), [2, 3]);
  assert.deepEqual(lastDeleted(secret(1, { 1: null, 2: T2, 3: T1 })), [2]);
  // A later delete of an already deleted version stamps it later.
  assert.deepEqual(lastDeleted(secret(3, { 1: T2, 2: T1, 3: null })), [1]);
  assert.deepEqual(lastDeleted(secret(2, { 1: null, 2: null })), []);
  // Times compare as instants, not as text.
  assert.deepEqual(
    lastDeleted(secret(1, { 1: null, 2: "2026-05-01T10:00:01Z", 3: T2 })),
    [2],
  );
});

Deno.test("versionsOf reads upstream's metadata shape", () => {
  const view = versionsOf({
    metadata: { currentVersion: 1 },
    versions: {
      "2": { version: 2, createdTime: T1, deletedTime: T2 },
      "1": { version: 1, createdTime: T1, deletedTime: null },
    },
  });
  assert.deepEqual(view, {
    current: 1,
    versions: [
      { version: 1, deletedTime: null },
      { version: 2, deletedTime: T2 },
    ],
  });
});

Deno.test("versionWords lists versions in words", () => {
  assert.equal(versionWords([2]), "version 2");
  assert.equal(versionWords([1, 2]), "versions 1 and 2");
  assert.equal(versionWords([1, 2, 3]), "versions 1, 2 and 3");
});

Deno.test("delete reports what it deleted, what is current and what to run", () => {
  const before = secret(2, { 1: null, 2: null });
  let report = deleteReport("a", [], before, secret(1, { 1: null, 2: T1 }));
  assert.equal(
    report.stdout,
    'Deleted version 2 of secret "a"; version 1 is current now\n',
  );
  assert.match(report.stderr, /^Warning: .*older value/);
  // Deleting an old version changes no current value: no warning.
  report = deleteReport("a", [1], before, secret(2, { 1: T1, 2: null }));
  assert.equal(report.stderr, "");
  // Nothing live afterwards: the exact undelete command.
  report = deleteReport("a", [1, 2], before, "unseen");
  assert.match(report.stdout, /undelete a -v 1,2\n$/);
  report = deleteReport("a", [], secret(2, { 1: T1, 2: null }), "unseen");
  assert.match(
    report.stdout,
    /Bring it back with: spike pilot secret undelete a\n$/,
  );
  // Already deleted, or not there at all.
  report = deleteReport("a", [1], secret(2, { 1: T1, 2: null }), before);
  assert.equal(
    report.stdout,
    'Nothing to delete: version 1 of secret "a" is already deleted\n',
  );
  report = deleteReport("a", [7], before, before);
  assert.equal(report.exitCode, 3);
  assert.match(report.stderr, /^Version 7 of secret "a" not found/);
  // Without read permission pilot cannot tell more than it asked.
  assert.equal(
    deleteReport("a", [], "hidden", "hidden").stdout,
    'Deleted the current version of secret "a"\n',
  );
});
