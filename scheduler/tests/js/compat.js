// The official OpenWhisk JavaScript client (npm `openwhisk`) against a wisp scheduler.
//
// Actions, activations, triggers and rules.
//
// Environment (set by scheduler/tests/openwhisk_js.rs):
//   WISP_APIHOST  e.g. http://127.0.0.1:40123
//   WISP_AUTH     uuid:key of a user
//   WISP_HELLO    path of hello.wasm   (greets `name`, logs "hello: greeting <name>")
//   WISP_ECHO     path of echo.wasm    (returns its parameters)
// Exits 0 when every step passed; prints the failing step and exits 1 otherwise.
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const openwhisk = require('openwhisk')

const ow = openwhisk({ apihost: process.env.WISP_APIHOST, api_key: process.env.WISP_AUTH })
const hello = fs.readFileSync(process.env.WISP_HELLO)
const echo = fs.readFileSync(process.env.WISP_ECHO)
const name = `jscompat-${process.pid}`

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function eventually (what, fn) {
  let last
  for (let i = 0; i < 100; i++) {
    try {
      return await fn()
    } catch (e) {
      last = e
      await sleep(100)
    }
  }
  throw new Error(`${what}: gave up, last error: ${last && last.message}`)
}

async function step (title, fn) {
  process.stdout.write(`- ${title} ... `)
  const out = await fn()
  console.log('ok')
  return out
}

async function main () {
  // Create from a file: the client base64-encodes a Buffer into exec.code.
  const created = await step('create a wasm action from a file', () =>
    ow.actions.create({ name, action: hello, kind: 'wasm', params: { name: 'default' } }))
  assert.equal(created.name, name)
  assert.equal(created.exec.kind, 'wasm')
  assert.equal(created.version, '0.0.1')

  const got = await step('get it (without code)', () => ow.actions.get({ name }))
  assert.equal(got.exec.kind, 'wasm')
  assert.equal(got.exec.code, undefined)
  assert.deepEqual(got.parameters, [{ key: 'name', value: 'default' }])

  const listed = await step('list actions', () => ow.actions.list())
  assert.ok(listed.some(a => a.name === name), 'the new action is listed')

  const result = await step('invoke blocking with result', () =>
    ow.actions.invoke({ name, blocking: true, result: true, params: { name: 'js' } }))
  assert.deepEqual(result, { greeting: 'Hello, js!' })

  const defaulted = await step('invoke blocking, default parameter', () =>
    ow.actions.invoke({ name, blocking: true, result: true }))
  assert.deepEqual(defaulted, { greeting: 'Hello, default!' })

  const full = await step('invoke blocking (full activation)', () =>
    ow.actions.invoke({ name, blocking: true, params: { name: 'record' } }))
  assert.match(full.activationId, /^[0-9a-f]{32}$/)
  assert.equal(full.response.status, 'success')
  assert.equal(full.response.success, true)
  assert.deepEqual(full.response.result, { greeting: 'Hello, record!' })

  const accepted = await step('invoke non-blocking', () =>
    ow.actions.invoke({ name, params: { name: 'later' } }))
  const id = accepted.activationId
  assert.match(id, /^[0-9a-f]{32}$/)
  assert.equal(accepted.response, undefined, 'a non-blocking invoke answers only the id')

  const activation = await step('fetch the activation', () =>
    eventually('activation record', () => ow.activations.get({ activation: id })))
  assert.equal(activation.activationId, id)
  assert.equal(activation.name, name)
  assert.equal(activation.response.status, 'success')
  assert.deepEqual(activation.response.result, { greeting: 'Hello, later!' })
  const annotations = Object.fromEntries(activation.annotations.map(a => [a.key, a.value]))
  assert.equal(annotations.kind, 'wasm')
  assert.ok(annotations.path.endsWith(`/${name}`), `path annotation ${annotations.path}`)
  assert.equal(typeof annotations.waitTime, 'number')
  assert.equal(typeof annotations.limits.timeout, 'number')

  const list = await step('list activations', () =>
    eventually('listed activation', async () => {
      const l = await ow.activations.list({ name, limit: 50 })
      assert.ok(l.some(a => a.activationId === id), 'the activation is listed')
      assert.ok(l.some(a => a.activationId === full.activationId), 'the blocking one too')
      return l
    }))
  assert.ok(list.length >= 2)

  const logs = await step('read logs', () => ow.activations.logs({ activation: id }))
  assert.ok(Array.isArray(logs.logs), 'logs is a list')
  assert.ok(logs.logs.some(l => l.includes('hello: greeting later')), `logs: ${JSON.stringify(logs.logs)}`)

  const res = await step('read the result', () => ow.activations.result({ activation: id }))
  assert.deepEqual(res.result, { greeting: 'Hello, later!' })

  const updated = await step('update the action (new code, full exec object)', () =>
    ow.actions.update({
      name,
      action: { exec: { kind: 'wasm', code: echo.toString('base64'), binary: true } }
    }))
  assert.equal(updated.version, '0.0.2')

  const echoed = await step('invoke the updated action', () =>
    ow.actions.invoke({ name, blocking: true, result: true, params: { a: 1, b: [true] } }))
  // An update without `parameters` keeps the action's (OpenWhisk semantics).
  assert.deepEqual(echoed, { a: 1, b: [true], name: 'default' })

  await step('an application error is rejected with 502', async () => {
    await assert.rejects(
      ow.actions.invoke({ name, blocking: true, params: { error: 'boom' } }),
      e => e.statusCode === 502 && e.error.response.status === 'application error')
  })

  // Triggers and rules (issue 5): fire a trigger, its active rule runs the action.
  const trigger = `${name}-trigger`
  const rule = `${name}-rule`
  await step('create a trigger', () =>
    ow.triggers.create({ name: trigger, trigger: { parameters: [{ key: 'from', value: 'trigger' }] } }))
  const ruleDoc = await step('create a rule', () => ow.rules.create({ name: rule, action: name, trigger }))
  assert.equal(ruleDoc.status, 'active')
  const fired = await step('fire the trigger', () => ow.triggers.invoke({ name: trigger, params: { a: 2 } }))
  assert.match(fired.activationId, /^[0-9a-f]{32}$/)
  const caused = await step('the rule ran the action with cause = the trigger activation', () =>
    eventually('caused activation', async () => {
      const l = await ow.activations.list({ name, limit: 50, docs: true })
      const a = l.find(x => x.cause === fired.activationId)
      assert.ok(a, 'an activation caused by the trigger')
      return a
    }))
  assert.deepEqual(caused.response.result, { a: 2, from: 'trigger', name: 'default' })
  const disabled = await step('disable the rule', () => ow.rules.disable({ name: rule }))
  assert.equal(disabled.status, 'inactive')
  await step('delete the rule and the trigger', async () => {
    await ow.rules.delete({ name: rule })
    await ow.triggers.delete({ name: trigger })
  })

  await step('delete the action', () => ow.actions.delete({ name }))
  await step('it is gone', async () => {
    await assert.rejects(ow.actions.get({ name }), e => e.statusCode === 404)
  })
  console.log('all OpenWhisk client steps passed')
}

main().catch(e => {
  console.log('FAILED')
  console.error(e)
  process.exit(1)
})
