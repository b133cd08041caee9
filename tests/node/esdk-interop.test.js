// p11kms encrypt-file / decrypt-file / rewrap-file against the official AWS
// Encryption SDK for JavaScript with a KmsKeyringNode whose client points at
// p11kmsd (issue 14, item 1 and 3). Run by tests/cli/esdk-interop.sh.
// Environment: P11KMSD_URL, P11KMSD_CA, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
// (the operator's access key), AWS_REGION, KEY_ARN, KEY2_ARN, P11KMS_BIN,
// P11KMS_CONFIG, OPR, ADM, WORKDIR, BIG_MB (100 by default).
// Prints "ok N what" per check; exits 1 on the first failure.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
// The keyring calls client.decrypt(...): the aggregated KMS class, not the bare KMSClient.
import { KMS } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  KmsKeyringNode, buildClient, CommitmentPolicy, getClient, AlgorithmSuiteIdentifier,
} from '@aws-crypto/client-node';

const env = process.env;
const agent = new https.Agent({ ca: readFileSync(env.P11KMSD_CA), keepAlive: true });
const config = {
  endpoint: env.P11KMSD_URL, region: env.AWS_REGION,
  credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  requestHandler: new NodeHttpHandler({ httpsAgent: agent }),
};
const clientProvider = getClient(KMS, config);
// Encrypt with the generator only (one EDK, as p11kms writes); decrypt with either key.
const encKeyring = new KmsKeyringNode({ generatorKeyId: env.KEY_ARN, clientProvider });
const keyring = new KmsKeyringNode({ generatorKeyId: env.KEY_ARN, keyIds: [env.KEY2_ARN], clientProvider });
const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
const W = env.WORKDIR;
let n = 0;
const ok = (what) => console.log(`ok ${++n} ${what}`);

function p11kms (as, args) {
  return execFileSync(env.P11KMS_BIN, ['--config', env.P11KMS_CONFIG, '--as', as, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 20 }).toString();
}
// Header length of a v2 message: everything before the first frame.
function headerLength (b) {
  let o = 35;
  o += 2 + b.readUInt16BE(o);
  const count = b.readUInt16BE(o); o += 2;
  for (let i = 0; i < 3 * count; i++) o += 2 + b.readUInt16BE(o);
  return o + 1 + 4 + 32 + 16;
}
const bodyHash = (b) => createHash('sha256').update(b.subarray(headerLength(b))).digest('hex');

const suites = {
  '0x0478': AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
  '0x0578': AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
};
const contexts = [{}, { 'sch\u00e9ma': 'v\u00e9', '\u65e5\u672c': 'x', tenant: 't-1' }];
const big = Number(env.BIG_MB || 100) * 1024 * 1024;
const sizes = [0, 1, 4095, 4096, 4097, big];

for (const [name, suiteId] of Object.entries(suites)) {
  for (const size of sizes) {
    for (const context of (size === big ? [contexts[1]] : contexts)) {
      const what = `${name} ${size} B ${Object.keys(context).length ? 'context' : 'no context'}`;
      const data = randomBytes(size);
      writeFileSync(`${W}/p`, data);
      // p11kms -> SDK
      const ctxArgs = Object.entries(context).flatMap(([k, v]) => ['--context', `${k}=${v}`]);
      p11kms(env.OPR, ['encrypt-file', '--key', env.KEY_ARN, '--suite', name, ...ctxArgs, `${W}/p`, `${W}/c`]);
      const { plaintext, messageHeader } = await decrypt(keyring, readFileSync(`${W}/c`));
      assert.ok(plaintext.equals(data));
      for (const [k, v] of Object.entries(context)) assert.equal(messageHeader.encryptionContext[k], v);
      assert.equal(messageHeader.suiteId, suiteId);
      ok(`SDK decrypts p11kms ${what}`);
      // SDK -> p11kms
      const { result } = await encrypt(encKeyring, data, { encryptionContext: context, suiteId, frameLength: 4096 });
      writeFileSync(`${W}/n`, result);
      p11kms(env.OPR, ['decrypt-file', ...ctxArgs, `${W}/n`, `${W}/q`]);
      assert.ok(readFileSync(`${W}/q`).equals(data));
      ok(`p11kms decrypts SDK ${what}`);
    }
  }
}

// rewrap-file after key rotate and to another key: the SDK still decrypts, the body is the same.
const data = randomBytes(300000);
writeFileSync(`${W}/p`, data);
p11kms(env.OPR, ['encrypt-file', '--key', env.KEY_ARN, '--context', 'tenant=t-1', `${W}/p`, `${W}/r0`]);
const h0 = bodyHash(readFileSync(`${W}/r0`));
p11kms(env.ADM, ['key', 'rotate', env.KEY_ARN]);
p11kms(env.OPR, ['rewrap-file', `${W}/r0`, `${W}/r1`]);
const r1 = readFileSync(`${W}/r1`);
assert.equal(bodyHash(r1), h0);
assert.ok((await decrypt(keyring, r1)).plaintext.equals(data)); ok('SDK decrypts a file rewrapped after key rotate');
p11kms(env.OPR, ['rewrap-file', '--key', env.KEY2_ARN, `${W}/r1`, `${W}/r2`]);
const r2 = readFileSync(`${W}/r2`);
assert.equal(bodyHash(r2), h0);
const d2 = await decrypt(keyring, r2);
assert.ok(d2.plaintext.equals(data));
assert.equal(d2.messageHeader.encryptedDataKeys[0].providerInfo, env.KEY2_ARN); ok('SDK decrypts a file rewrapped to another key');
