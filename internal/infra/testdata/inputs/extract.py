import re, subprocess, sys
def show(repo, tag, path):
    return subprocess.run(["git","-C",repo,"show",f"{tag}:{path}"],capture_output=True,text=True,check=True).stdout
def variables(text):
    return re.findall(r'^variable "([^"]+)"', text, re.M)
def attrs(text, var):
    m = re.search(r'^variable "%s" \{' % var, text, re.M)
    body = text[m.end():]
    t = body.find("object({")
    i = t + len("object({")
    depth = 1; out = []; line = ""
    # walk chars, collect attribute names at depth 1
    for ln in body[i:].split("\n"):
        if depth == 1:
            mm = re.match(r'\s*([a-z_0-9]+)\s*=', ln)
            if mm: out.append(mm.group(1))
        for ch in re.sub(r'#.*', '', ln):
            if ch in "({[": depth += 1
            elif ch in ")}]": depth -= 1
        if depth <= 0: break
    return out
repo, tag, source, files, nested, keysfrom = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(","), sys.argv[5], sys.argv[6]
commit = subprocess.run(["git","-C",repo,"rev-list","-n1",tag],capture_output=True,text=True).stdout.strip()
print(f"# {source} {tag} (commit {commit}): the names of its input variables,")
print(f"# read from {', '.join(files)} at that tag; VAR.ATTR lines are the attributes")
print("# of the object a variable takes. Regenerate by reading the same files at a new tag.")
names = []
texts = {f: show(repo, tag, f) for f in files}
for f, t in texts.items():
    names += variables(t)
for v in nested.split(","):
    if not v: continue
    for f, t in texts.items():
        if re.search(r'^variable "%s"' % v, t, re.M):
            names += [v + "." + a for a in attrs(t, v)]
if keysfrom:
    var, f = keysfrom.split(":")
    t = show(repo, tag, f)
    ks = set(re.findall(r'lookup\(\s*(?:each|autoscaling)\.value,\s*"([a-z_0-9]+)"', t)) | set(re.findall(r'each\.value\["([a-z_0-9]+)"\]', t))
    names += [var + "." + k for k in ks]
for n in sorted(set(names)): print(n)
