// Summarises http-cache-tests results files.
//
//   node summarize.mjs PKGDIR [--failing FAILING.md] NAME=RESULTS.json [NAME=RESULTS.json ...]
//
// The suite marks each test with a kind: 'required' (or no kind), 'optimal'
// or 'check'. A test counts as passed as the suite's own report shows it
// (lib/display.mjs determineTestResult): its result is true and every test it
// depends_on passed too. Anything else (assertion failure, setup failure,
// failed dependency, harness error, not run) counts as failed. Browser-only
// tests are not run by the cli and are left out.
//
// With one results file it prints the counts and the failed required tests;
// with several it prints a comparison table and a per-test matrix of the
// required tests that fail anywhere. The last line printed for a single file
// is "NAME: required P passed, F failed". With --failing, a single run's
// failed required tests are compared with the ids listed in FAILING.md (lines
// "- `test-id`: reason"), and the differences are printed.
import path from 'path'
import fs from 'fs'
import { pathToFileURL } from 'url'

const [pkgDir, ...rest] = process.argv.slice(2)
let failingFile
const runs = []
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === '--failing') failingFile = rest[++i]
  else runs.push(rest[i])
}
if (!pkgDir || runs.length === 0) {
  console.error('usage: node summarize.mjs PKGDIR NAME=RESULTS.json ...')
  process.exit(2)
}
const load = rel => import(pathToFileURL(path.join(pkgDir, rel)).href)
const suites = (await load('tests/index.mjs')).default
suites.push((await load('tests/surrogate-control.mjs')).default)
const { determineTestResult } = await load('lib/display.mjs')

const tests = []
for (const suite of suites) {
  for (const t of suite.tests) {
    if (t.browser_only === true) continue
    tests.push({ suite: suite.id, id: t.id, kind: t.kind || 'required', name: t.name })
  }
}

// outcome maps a test to pass | fail | setup | dependency | harness | retry | untested.
function outcome (results, id) {
  const symbol = determineTestResult(suites, id, results)[2]
  switch (symbol) {
    case '✅': case 'Y': return 'pass'
    case '⛔️': case '⚠️': case 'N': return 'fail'
    case '🔹': return 'setup'
    case '⚪️': return 'dependency'
    case '⁉️': return 'harness'
    case '↻': return 'retry'
    default: return 'untested'
  }
}

function reason (results, id) {
  const r = results[id]
  if (r === undefined) return 'not run'
  if (r === true || outcome(results, id) === 'dependency') {
    const t = suites.flatMap(s => s.tests).find(x => x.id === id)
    const bad = (t.depends_on || []).filter(d => outcome(results, d) !== 'pass')
    return `depends on ${bad.join(', ')}`
  }
  return `${r[0]}: ${r[1]}`
}

function summarise (name, file) {
  const results = JSON.parse(fs.readFileSync(file, 'utf8'))
  const s = { name, file, results, kinds: {}, failedRequired: [] }
  for (const kind of ['required', 'optimal', 'check']) s.kinds[kind] = { pass: 0, total: 0, by: {} }
  for (const t of tests) {
    const o = outcome(results, t.id)
    const k = s.kinds[t.kind]
    k.total++
    k.by[o] = (k.by[o] || 0) + 1
    if (o === 'pass') k.pass++
    else if (t.kind === 'required') s.failedRequired.push({ id: t.id, outcome: o, reason: reason(results, t.id) })
  }
  return s
}

const all = runs.map(arg => {
  const i = arg.indexOf('=')
  return summarise(arg.slice(0, i), arg.slice(i + 1))
})

if (all.length === 1) {
  const s = all[0]
  const req = s.kinds.required
  if (s.failedRequired.length > 0) {
    console.log(`failed required tests (${s.failedRequired.length}):`)
    for (const f of s.failedRequired) console.log(`  ${f.id} [${f.outcome}] ${f.reason.replace(/\s+/g, ' ').slice(0, 160)}`)
  }
  const other = Object.entries(req.by).filter(([o]) => o !== 'pass').map(([o, n]) => `${n} ${o}`).join(', ')
  console.log(`optimal ${s.kinds.optimal.pass}/${s.kinds.optimal.total} passed; checks ${s.kinds.check.pass}/${s.kinds.check.total} yes; required not passed by kind: ${other || 'none'}`)
  if (failingFile) checkFailing(s)
  console.log(`${s.name}: required ${req.pass} passed, ${req.total - req.pass} failed`)
} else {
  const w = Math.max(8, ...all.map(s => s.name.length))
  const pad = (x, n) => String(x).padEnd(n)
  console.log(`${pad('target', w)}  required  optimal  check(yes)`)
  for (const s of all) {
    const k = s.kinds
    console.log(`${pad(s.name, w)}  ${pad(`${k.required.pass}/${k.required.total}`, 8)}  ${pad(`${k.optimal.pass}/${k.optimal.total}`, 7)}  ${k.check.pass}/${k.check.total}`)
  }
  const failing = tests.filter(t => t.kind === 'required' && all.some(s => outcome(s.results, t.id) !== 'pass'))
  if (failing.length > 0) {
    console.log('')
    console.log(`required tests failed by at least one target (x = failed, . = passed):`)
    const cols = all.map(s => s.name)
    const idw = Math.max(...failing.map(t => t.id.length))
    console.log(`${pad('', idw)}  ${cols.join('  ')}`)
    for (const t of failing) {
      const cells = all.map(s => pad(outcome(s.results, t.id) === 'pass' ? '.' : 'x', s.name.length))
      console.log(`${pad(t.id, idw)}  ${cells.join('  ')}`)
    }
  }
  console.log('')
  for (const s of all) console.log(`${s.name}: required ${s.kinds.required.pass} passed, ${s.kinds.required.total - s.kinds.required.pass} failed`)
}

// checkFailing prints the failed required tests that FAILING.md lacks and
// the ones it lists that passed.
function checkFailing (s) {
  let text = ''
  try {
    text = fs.readFileSync(failingFile, 'utf8')
  } catch (err) {
    console.log(`cannot read ${failingFile}: ${err.message}`)
    return
  }
  const listed = new Set()
  for (const m of text.matchAll(/^- `([^`]+)`/gm)) listed.add(m[1])
  const failed = new Set(s.failedRequired.map(f => f.id))
  const missing = [...failed].filter(id => !listed.has(id))
  const passing = [...listed].filter(id => !failed.has(id) && tests.some(t => t.id === id))
  const unknown = [...listed].filter(id => !tests.some(t => t.id === id))
  if (missing.length) console.log(`failing.md has no reason for: ${missing.join(' ')}`)
  if (passing.length) console.log(`failing.md lists tests that passed this run: ${passing.join(' ')}`)
  if (unknown.length) console.log(`failing.md lists unknown test ids: ${unknown.join(' ')}`)
  if (!missing.length && !passing.length && !unknown.length) console.log(`failing.md matches the ${failed.size} failed required tests`)
}
