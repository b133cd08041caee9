// The official AWS Encryption SDK for JavaScript with a Raw AES keyring:
// the offline half of the interop check (tests/cli/esdk-node.sh).
//   node esdk-raw.cjs encrypt KEYHEX SUITE FRAMELEN [K=V]... < plaintext > message
//   node esdk-raw.cjs decrypt KEYHEX < message > plaintext   (prints the context on stderr as JSON)
'use strict'
const {
  RawAesKeyringNode, RawAesWrappingSuiteIdentifier, buildClient, CommitmentPolicy, AlgorithmSuiteIdentifier,
} = require('@aws-crypto/client-node')

const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
const [mode, keyHex, suite, frameLength, ...pairs] = process.argv.slice(2)
const keyring = new RawAesKeyringNode({
  keyName: 'raw-key',
  keyNamespace: 'p11kms-test',
  unencryptedMasterKey: new Uint8Array(Buffer.from(keyHex, 'hex')),
  wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
})

async function readStdin () {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  return Buffer.concat(chunks)
}

async function main () {
  const input = await readStdin()
  if (mode === 'encrypt') {
    const encryptionContext = {}
    for (const p of pairs) {
      const i = p.indexOf('=')
      encryptionContext[p.slice(0, i)] = p.slice(i + 1)
    }
    const suiteId = suite === '0x0578'
      ? AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
      : AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY
    const { result } = await encrypt(keyring, input, { encryptionContext, suiteId, frameLength: Number(frameLength) })
    process.stdout.write(result)
  } else {
    const { plaintext, messageHeader } = await decrypt(keyring, input)
    process.stderr.write(JSON.stringify(messageHeader.encryptionContext) + '\n')
    process.stdout.write(plaintext)
  }
}
main().catch((e) => { process.stderr.write(`esdk-raw: ${e.message}\n`); process.exit(1) })
