// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Conversion of a schema-1 store (the first release) to store format 2.
 *
 * Schema 1 sealed every field on its own with AES-256-GCM under a storage
 * key derived from the root key, with associated data
 * `["spike/v1", table, key, version or null, field]`, and kept a plaintext
 * `deleted` flag per version. The conversion opens every field, keeps every
 * version, deletion, time and policy, and seals them again as format-2
 * records under term 1 of the new keyring. The sealed deletion time is the
 * truth: a flag that disagrees is reported, not copied. What format 2
 * cannot hold faithfully (a field that does not open, versions with a gap)
 * stops the migration, which leaves the schema-1 store as it was.
 *
 * @module
 */
import { DecryptionError, open } from "../../../lib/crypto/aead.ts";
import { zero } from "../../../lib/crypto/zero.ts";
import type {
  Schema1Converter,
  Schema1Policy,
  Schema1Secret,
  Sealed,
} from "./backend.ts";
import { StoreError } from "./backend.ts";
import type { RecordCipher } from "./record_cipher.ts";
import type { SecretHead, VersionTimes } from "../secrets/secret_head.ts";
import { isValues } from "../secrets/secret_head.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The converter of one migration.
 *
 * @param storage the schema-1 storage key
 * @param keyring seals the new keyring (term 1, the schema-1 cipher key)
 *   once every record is sealed, with their count
 * @param records seals with the new keyring
 * @param warn told about each disagreement the conversion resolved
 * @returns the converter
 */
export function schema1Converter(
  storage: CryptoKey,
  keyring: () => Promise<Sealed>,
  records: RecordCipher,
  warn: (message: string) => void,
): Schema1Converter {
  const field = async (
    sealed: Sealed,
    table: string,
    key: string,
    version: number | null,
    name: string,
  ): Promise<unknown> => {
    let plaintext: Uint8Array<ArrayBuffer> | undefined;
    try {
      plaintext = await open(
        storage,
        sealed,
        encoder.encode(JSON.stringify(["spike/v1", table, key, version, name])),
      );
      return JSON.parse(decoder.decode(plaintext));
    } catch (e) {
      const where = `${table}.${name} of "${key}"${
        version === null ? "" : ` version ${version}`
      }`;
      throw new StoreError(
        `Cannot migrate the schema-1 store: ${where} ${
          e instanceof DecryptionError
            ? "does not decrypt (altered or moved)"
            : "is not JSON"
        }`,
      );
    } finally {
      zero(plaintext);
    }
  };
  const text = async (...at: Parameters<typeof field>): Promise<string> => {
    const value = await field(...at);
    if (typeof value !== "string") throw wrongType(at[2], at[4]);
    return value;
  };

  return {
    keyring,

    async secret(s: Schema1Secret) {
      const { path } = s;
      const versions = await Promise.all(s.versions.map(async (v) => {
        const [values, createdTime, deletedTime] = await Promise.all([
          field(v.data, "secret_versions", path, v.version, "data"),
          text(
            v.createdTime,
            "secret_versions",
            path,
            v.version,
            "createdTime",
          ),
          field(
            v.deletedTime,
            "secret_versions",
            path,
            v.version,
            "deletedTime",
          ),
        ]);
        if (!isValues(values)) throw wrongType(path, "data");
        if (deletedTime !== null && typeof deletedTime !== "string") {
          throw wrongType(path, "deletedTime");
        }
        if ((deletedTime !== null) !== v.deleted) {
          warn(
            `Secret "${path}" version ${v.version}: the schema-1 deleted flag disagreed with the sealed deletion time; the sealed time was kept`,
          );
        }
        const times: VersionTimes = { createdTime, deletedTime };
        return { version: v.version, values, times };
      }));
      const lowest = versions[0]?.version;
      if (
        lowest === undefined ||
        versions.some((v, i) => v.version !== lowest + i)
      ) {
        throw new StoreError(
          `Cannot migrate the schema-1 store: secret "${path}" has ${
            lowest === undefined ? "no version rows" : "a gap in its versions"
          } (rows were removed)`,
        );
      }
      const [createdTime, updatedTime, maxVersions] = await Promise.all([
        text(s.createdTime, "secrets", path, null, "createdTime"),
        text(s.updatedTime, "secrets", path, null, "updatedTime"),
        field(s.maxVersions, "secrets", path, null, "maxVersions"),
      ]);
      if (!Number.isSafeInteger(maxVersions) || (maxVersions as number) < 1) {
        throw wrongType(path, "maxVersions");
      }
      const highest = versions.at(-1)!;
      const head: SecretHead = {
        createdTime,
        updatedTime,
        maxVersions: maxVersions as number,
        lowest,
        versions: versions.map((v) => v.times),
        data: highest.values,
      };
      const [sealedHead, ...rows] = await Promise.all([
        records.seal(head, { table: "secrets", key: path, n: s.revision }),
        ...versions.slice(0, -1).map((v) =>
          records.seal(v.values, {
            table: "secret_versions",
            key: path,
            n: v.version,
          })
        ),
      ]);
      return {
        revision: s.revision,
        head: sealedHead!,
        records: rows.map((record, i) => ({
          version: versions[i]!.version,
          record,
        })),
      };
    },

    async policies(rows: readonly Schema1Policy[]) {
      if (rows.length === 0) return undefined;
      const generation = 1;
      const converted = await Promise.all(rows.map(async (p) => {
        const at = (name: Exclude<keyof Schema1Policy, "name">) =>
          [p[name], "policies", p.name, null, name] as const;
        const [
          spiffeIdPattern,
          pathPattern,
          permissions,
          createdAt,
          updatedAt,
        ] = await Promise.all([
          text(...at("spiffeIdPattern")),
          text(...at("pathPattern")),
          field(...at("permissions")),
          text(...at("createdAt")),
          text(...at("updatedAt")),
        ]);
        if (
          !Array.isArray(permissions) ||
          !permissions.every((x) => typeof x === "string")
        ) {
          throw wrongType(p.name, "permissions");
        }
        return {
          name: p.name,
          record: await records.seal(
            { spiffeIdPattern, pathPattern, permissions, createdAt, updatedAt },
            { table: "policies", key: p.name, n: generation },
          ),
        };
      }));
      const set = await records.seal(
        { policies: converted.map((p) => [p.name, generation]) },
        { table: "policy_set", key: "", n: generation },
      );
      return { set: { generation, record: set }, rows: converted };
    },
  };
}

function wrongType(key: string, field: string): StoreError {
  return new StoreError(
    `Cannot migrate the schema-1 store: ${field} of "${key}" has the wrong type`,
  );
}
