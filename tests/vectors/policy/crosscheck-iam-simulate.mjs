// Cross-check the evaluation vectors against @cloud-copilot/iam-simulate.
// Not part of `make check`. Usage (from a scratch directory, never the repo):
//   cd /tmp/iamsim && npm install @cloud-copilot/iam-simulate
//   node /path/to/tests/vectors/policy/crosscheck-iam-simulate.mjs /tmp/iamsim/node_modules [-v]
// Prints one line per disagreement and a summary. It calls the simulator's
// core engine directly (runSimulation drops kms:EncryptionContext:<k> keys
// as "not allowed for the action"), with the key policy as the resource
// policy; a cross-account caller also gets an allow-all identity policy so
// that the key policy alone decides, as it does in p11kms.
import { readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const modules = process.argv[2]
const verbose = process.argv.includes('-v')
if (!modules) {
  console.error('usage: crosscheck-iam-simulate.mjs NODE_MODULES_DIR [-v]')
  process.exit(2)
}
const require = createRequire(join(modules, 'x.js'))
const base = join(modules, '@cloud-copilot/iam-simulate/dist/cjs')
const { authorize } = require(join(base, 'core_engine/CoreSimulatorEngine.js'))
const { AwsRequestImpl } = require(join(base, 'request/request.js'))
const { RequestContextImpl } = require(join(base, 'requestContext.js'))
const { DiscoveryContextKeyConstraints } = require(join(base, 'context_keys/discoveryContextKeyConstraints.js'))
const { loadPolicy } = require('@cloud-copilot/iam-policy')

const KEY_ACCOUNT = '111122223333'
const here = dirname(fileURLToPath(import.meta.url))

function accountOf(arn) {
  const p = arn.split(':')
  return p.length >= 6 ? p[4] : undefined
}

function toIso(t) {
  if (typeof t === 'number') return new Date(t * 1000).toISOString().replace('.000Z', 'Z')
  if (/^[0-9]+$/.test(t)) return new Date(Number(t) * 1000).toISOString().replace('.000Z', 'Z')
  return new Date(Date.parse(t)).toISOString().replace('.000Z', 'Z')
}

function simulate(policy, req) {
  const ctx = {}
  const ec = req.context || {}
  for (const [k, v] of Object.entries(ec)) ctx[`kms:EncryptionContext:${k}`] = v
  if (Object.keys(ec).length > 0) ctx['kms:EncryptionContextKeys'] = Object.keys(ec)
  for (const [k, v] of Object.entries(req.request_context || {})) ctx[k] = Array.isArray(v) && v.length === 1 && !/calledvia|custom/i.test(k) ? v[0] : v
  const acct = accountOf(req.principal)
  if (acct) ctx['kms:CallerAccount'] = acct
  ctx['aws:PrincipalArn'] = req.principal
  const iso = toIso(req.time)
  ctx['aws:CurrentTime'] = iso
  ctx['aws:EpochTime'] = String(Math.floor(Date.parse(iso) / 1000))
  const identity = acct !== KEY_ACCOUNT
    ? [loadPolicy({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }, { name: 'caller' })]
    : []
  const request = new AwsRequestImpl(req.principal, { resource: req.resource, accountId: KEY_ACCOUNT }, req.action,
    new RequestContextImpl(ctx))
  const analysis = authorize({
    request,
    sessionPolicy: undefined,
    identityPolicies: identity,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: loadPolicy(policy, { name: 'keypolicy' }),
    permissionBoundaries: undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: { simulationMode: 'Strict', discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]) },
    serviceSettings: { s3: {} }
  })
  return analysis.result
}

let agree = 0, disagree = 0, skipped = 0
for (const file of readdirSync(here).filter((f) => /^eval-.*\.json$/.test(f)).sort()) {
  const doc = JSON.parse(readFileSync(join(here, file), 'utf8'))
  for (const g of doc.groups) {
    for (const c of g.cases) {
      const req = { ...(g.defaults || {}), ...c }
      if (req.resource === null || req.resource === undefined) {
        skipped++
        if (verbose) console.log(`SKIP ${file} / ${g.name} / ${c.name}: no resource`)
        continue
      }
      let got
      try {
        got = simulate(g.policy, req)
      } catch (e) {
        got = `error: ${e.message}`
      }
      if (got === c.expect) {
        agree++
      } else {
        disagree++
        console.log(`DIFF ${file} / ${g.name} / ${c.name}: p11kms ${c.expect}, iam-simulate ${got}`)
      }
    }
  }
}
console.log(`agree ${agree}, disagree ${disagree}, skipped ${skipped}`)
