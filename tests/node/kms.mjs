// p11kmsd from the AWS SDK for JavaScript v3 and the AWS Encryption SDK
// (issue 12, items 2 and 3). Environment: P11KMSD_URL, P11KMSD_CA,
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the operator's access key),
// AWS_REGION, KEY_ARN. Prints "ok N" per check and exits 1 on the first failure.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import {
  KMS, KMSClient, EncryptCommand, DecryptCommand, GenerateDataKeyCommand,
  GenerateDataKeyWithoutPlaintextCommand, ReEncryptCommand, GenerateRandomCommand,
} from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  KmsKeyringNode, buildClient, CommitmentPolicy, getClient,
} from '@aws-crypto/client-node';

const { P11KMSD_URL: endpoint, P11KMSD_CA: caFile, KEY_ARN: keyArn, AWS_REGION: region } = process.env;
const agent = new https.Agent({ ca: readFileSync(caFile), keepAlive: true });
const config = {
  endpoint, region,
  credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY },
  requestHandler: new NodeHttpHandler({ httpsAgent: agent }),
};
const kms = new KMSClient(config);
let n = 0;
const ok = (what) => console.log(`ok ${++n} ${what}`);

// Data plane with the SDK.
const ctx = { tenant: 't-1' };
const enc = await kms.send(new EncryptCommand({ KeyId: keyArn, Plaintext: Buffer.from('node bytes'), EncryptionContext: ctx }));
assert.equal(enc.KeyId, keyArn); assert.equal(enc.EncryptionAlgorithm, 'SYMMETRIC_DEFAULT'); ok('Encrypt');
const dec = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ctx }));
assert.equal(dec.KeyId, keyArn); assert.equal(Buffer.from(dec.Plaintext).toString(), 'node bytes'); ok('Decrypt');
await assert.rejects(kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { tenant: 't-2' } })),
  (e) => e.name === 'InvalidCiphertextException'); ok('Decrypt with the wrong context');
const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256', EncryptionContext: ctx }));
assert.equal(dk.Plaintext.length, 32); assert.equal(dk.KeyId, keyArn); ok('GenerateDataKey');
const dkwp = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyArn, NumberOfBytes: 64 }));
assert.equal(dkwp.Plaintext, undefined); assert.equal(dkwp.CiphertextBlob.length, 114); ok('GenerateDataKeyWithoutPlaintext');
const re = await kms.send(new ReEncryptCommand({
  CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: ctx, DestinationKeyId: keyArn,
  DestinationEncryptionContext: { tenant: 't-9' },
}));
assert.equal(re.SourceKeyId, keyArn); assert.equal(re.KeyId, keyArn); ok('ReEncrypt');
const rnd = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 16 }));
assert.equal(rnd.Plaintext.length, 16); ok('GenerateRandom');

// The AWS Encryption SDK: a KmsKeyringNode whose client points at p11kmsd.
const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
// The keyring calls client.generateDataKey() etc.: it needs the aggregated KMS client class.
const clientProvider = getClient(KMS, config);
const keyring = new KmsKeyringNode({ generatorKeyId: keyArn, clientProvider });
const data = randomBytes(1024 * 1024);
const context = { purpose: 'p11kmsd-test', tenant: 't-1' };
const { result } = await encrypt(keyring, data, { encryptionContext: context });
const { plaintext, messageHeader } = await decrypt(keyring, result);
assert.ok(plaintext.equals(data)); assert.equal(messageHeader.encryptionContext.tenant, 't-1'); ok('ESDK 1 MiB round trip');
// The data key is bound to the context: p11kmsd refuses it under another one.
await assert.rejects(kms.send(new DecryptCommand({
  CiphertextBlob: messageHeader.encryptedDataKeys[0].encryptedDataKey, EncryptionContext: { ...context, tenant: 't-2' },
})), (e) => e.name === 'InvalidCiphertextException');
ok('ESDK data key with the wrong context fails');
agent.destroy();
