"""Differential test of the locale-aware filters (issue 14, item 2): generated
dates, amounts and numbers formatted by Herald's date, currency and number
filters (lib/template/filters.lua with the data of lib/template/locales.lua,
through tests/integration/locale_format_driver.lua) and by Babel (Debian's
python3-babel, CLDR), for en, fr and es, compared byte for byte.

Dates: the named formats (short, medium, long, full; day_month against
Babel's skeleton MMMMd) and generated patterns
of the strftime-like directives, translated to CLDR patterns for Babel.
Amounts: whole cents in every currency of the data (whole units for JPY),
negative too. Numbers: thousandths, format_decimal's default pattern.
What is left out on purpose: Babel's en symbol for a currency outside the
data (CLDR writes "CHF5.00", Herald keeps its "CHF 5.00"; docs/scripting.md).
HERALD_LOCALE_FORMAT_CASES changes the number of cases (default 3000),
HERALD_LOCALE_FORMAT_SEED the seed."""
import datetime
import decimal
import json
import os
import random
import subprocess
import sys
import unittest

try:
    from babel.dates import format_date, format_skeleton
    from babel.numbers import format_currency, format_decimal
except ImportError:  # tools/deps.sh installs it
    sys.exit("test_locale_format: python3-babel is missing (Debian package python3-babel)")

SRC = os.environ.get("HERALD_SOURCE_DIR", os.getcwd())
MODDIR = os.path.dirname(os.environ.get("HERALD_BIN", os.path.join(SRC, "build", "herald")))
CASES = int(os.environ.get("HERALD_LOCALE_FORMAT_CASES", "3000"))
SEED = int(os.environ.get("HERALD_LOCALE_FORMAT_SEED", "14"))

LOCALES = ["en", "fr", "es"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CAD", "AUD", "MXN"]
# Herald's directive -> CLDR's pattern letters
DIRECTIVES = {"%Y": "y", "%y": "yy", "%m": "MM", "%-m": "M", "%d": "dd", "%-d": "d",
              "%e": "d", "%B": "MMMM", "%b": "MMM", "%A": "EEEE", "%a": "EEE"}
SEPARATORS = [" ", ", ", "/", "-", ". ", " de "]


class Gen:
    def __init__(self, rng):
        self.r = rng

    def date(self):
        r = self.r
        d = datetime.date(r.randint(1900, 2100), 1, 1) + datetime.timedelta(days=r.randint(0, 364))
        return d

    def case(self):
        r = self.r
        locale = r.choice(LOCALES)
        kind = r.choice(["named", "pattern", "currency", "currency", "number"])
        if kind == "named":
            d, f = self.date(), r.choice(["short", "medium", "long", "full", "day_month"])
            want = format_skeleton("MMMMd", d, locale=locale) if f == "day_month" \
                else format_date(d, f, locale=locale)
            return ({"template": '{{ d|date("%s") }}' % f, "context": {"d": d.isoformat()},
                     "locale": locale}, want)
        if kind == "pattern":
            d = self.date()
            keys = [r.choice(list(DIRECTIVES)) for _ in range(r.randint(1, 4))]
            seps = [r.choice(SEPARATORS) for _ in keys[1:]]
            ours, cldr = keys[0], DIRECTIVES[keys[0]]
            for sep, k in zip(seps, keys[1:]):
                ours += sep + k
                cldr += "'%s'" % sep + DIRECTIVES[k]
            return ({"template": '{{ d|date("%s") }}' % ours, "context": {"d": d.isoformat()},
                     "locale": locale}, format_date(d, cldr, locale=locale))
        if kind == "currency":
            code = r.choice(CURRENCIES)
            if code == "JPY":
                amount = decimal.Decimal(r.choice([1, 1, -1]) * r.randint(0, 10 ** r.randint(1, 9)))
            else:
                cents = r.choice([1, 1, 1, -1]) * r.randint(0, 10 ** r.randint(1, 12))
                amount = decimal.Decimal(cents) / 100
            return ({"template": "{{ x|currency(code) }}",
                     "context": {"x": float(amount), "code": code}, "locale": locale},
                    format_currency(amount, code, locale=locale))
        thousandths = r.choice([1, 1, -1]) * r.randint(1, 10 ** r.randint(1, 12))
        x = decimal.Decimal(thousandths) / 1000
        return ({"template": "{{ x|number }}", "context": {"x": float(x)}, "locale": locale},
                format_decimal(x, locale=locale))


def herald_render(cases):
    lines = "".join(json.dumps(c) + "\n" for c in cases)
    env = dict(os.environ, HERALD_MODULE_DIR=MODDIR)
    p = subprocess.run(["lua5.4", os.path.join(SRC, "tests", "integration",
                                               "locale_format_driver.lua")],
                       input=lines.encode(), capture_output=True, cwd=SRC, env=env, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("driver failed: %s" % p.stderr.decode()[-2000:])
    return [json.loads(l) for l in p.stdout.decode().split("\n") if l]


class LocaleFormatDiffTest(unittest.TestCase):
    maxDiff = None

    def test_herald_formats_what_babel_formats(self):
        gen = Gen(random.Random(SEED))
        pairs = [gen.case() for _ in range(CASES)]
        got = herald_render([c for c, _ in pairs])
        self.assertEqual(len(got), len(pairs))
        diffs = []
        kinds = {}
        for (case, want), res in zip(pairs, got):
            kind = case["template"].split("|")[1][:4]  # date, curr, numb
            kinds[kind] = kinds.get(kind, 0) + 1
            out = res.get("out") if res.get("ok") else "ERROR " + res.get("error", "")
            if out != want:
                diffs.append("%s %s %s: herald %r, babel %r" % (
                    case["locale"], case["template"], json.dumps(case["context"]), out, want))
        # every kind was generated, and enough of each to mean something
        self.assertEqual(sorted(kinds), ["curr", "date", "numb"], kinds)
        self.assertTrue(all(n > CASES // 10 for n in kinds.values()), kinds)
        self.assertEqual(diffs[:20], [], "%d of %d cases differ" % (len(diffs), len(pairs)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
