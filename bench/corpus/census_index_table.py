"""bench/corpus: census (heuristic) of the main false-positive class of the final sample: a DROP INDEX,
or a lock on a table, where the transaction already holds that table in ACCESS EXCLUSIVE
through an index whose table lint does not know. Index -> table from every
CREATE INDEX ... ON t / ALTER INDEX a RENAME TO b in the repo's up migrations."""
import json, os, re, sys, collections
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summarise as s
STRONG = "ACCESS EXCLUSIVE"
idx_re = re.compile(r'create\s+(?:unique\s+)?index\s+(?:concurrently\s+)?(?:if\s+not\s+exists\s+)?("?[\w]+"?)\s+on\s+(?:only\s+)?("?[\w.]+"?(?:\."?\w+"?)?)', re.I)
ren_re = re.compile(r'alter\s+index\s+(?:if\s+exists\s+)?("?[\w.]+"?)\s+rename\s+to\s+("?\w+"?)', re.I)
con_re = re.compile(r'alter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?("?[\w.]+"?(?:\."?\w+"?)?)\s+add\s+constraint\s+("?\w+"?)\s+(?:unique|primary)', re.I)
jobs = s.jobs()
maps = collections.defaultdict(dict)
for j in jobs:
    t = open(j["file"], errors="replace").read()
    m = maps[j["repo"]]
    for a, b in idx_re.findall(t): m[s.bare(a).lower()] = s.bare(b).lower()
    for b, a in con_re.findall(t): m[s.bare(a).lower()] = s.bare(b).lower()
    for a, b in ren_re.findall(t):
        if s.bare(a).lower() in m: m[s.bare(b).lower()] = m[s.bare(a).lower()]
counts = collections.Counter(); ex = collections.defaultdict(list); total = collections.Counter()
for j in jobs:
    p = os.path.join(s.OUT, "pgcalm", j["id"] + ".json")
    r = s.read_run("pgcalm", j)
    if not r or r[0] != "ok": continue
    doc = json.load(open(p)); f = doc["files"][0]
    runs = f.get("runs") or ""
    intx = "(in one transaction)" in runs or (not runs and "--assume-in-transaction" in r[1])
    m = maps[j["repo"]]
    def tbl(t):
        n = s.bare(t["name"]["name"]).lower()
        return m.get(n) if t["kind"] == "table_of_index" else n
    held = {}  # table -> strongest is ACCESS EXCLUSIVE
    before = {}  # statement start -> set of tables held in ACCESS EXCLUSIVE before it
    for st in f["locks"]:
        before[st["span"]["start"]] = set(held) if intx else set()
        for l in st["locks"]:
            if l["mode"] == STRONG:
                t = tbl(l["target"])
                if t: held[t] = True
    for x in f["findings"]:
        if x["rule"] not in ("require-concurrent-index-deletion", "missing-lock-timeout"): continue
        st = next((y for y in f["locks"] if y["span"]["start"] == x["span"]["start"]), None)
        if not st: continue
        total[x["rule"]] += 1
        hb = before.get(x["span"]["start"], set())
        via_index = any(y["target"]["kind"] == "table_of_index" for y in st["locks"])
        for l in st["locks"]:
            t = tbl(l["target"])
            if t and t in hb and (via_index or x["rule"] == "missing-lock-timeout"):
                counts[x["rule"]] += 1; ex[x["rule"]].append(f"{j['repo']} {j['path']}:{x['span']['line']}")
                break
for k in total:
    print(k, "findings", total[k], "already held (heuristic)", counts[k], ex[k][:2])
