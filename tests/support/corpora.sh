# Small deterministic corpora for the shell tests (source this file).
#   tiny_text FILE [LINES]  sentences from a 14-word vocabulary (charlm)
#   tiny_fortunes DIR       four fortune files of 40 cookies each (topic)
tiny_text() {
    python3 - "$1" "${2:-400}" <<'PY'
import random, sys
random.seed(3)
words = "the cat sat on a mat and the dog ran to the big red house".split()
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        f.write(" ".join(random.choice(words) for _ in range(8)) + ".\n")
PY
}

tiny_fortunes() {
    mkdir -p "$1"
    python3 - "$1" <<'PY'
import random, sys
random.seed(5)
topics = {"computers": "computer program bug code disk unix byte",
          "politics": "vote senate law president party power",
          "science": "atom energy physics theory experiment",
          "songs-poems": "love heart sing song night moon"}
common = "the a of and is to in it".split()
for name, w in topics.items():
    w = w.split()
    with open(f"{sys.argv[1]}/{name}", "w") as f:
        cookies = [" ".join(random.choice(w + common) for _ in range(random.randint(2, 12)))
                   for _ in range(40)]
        f.write("\n%\n".join(cookies) + "\n%\n")
PY
}
