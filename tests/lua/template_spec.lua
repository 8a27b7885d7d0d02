-- lib/template: Jinja2 syntax and semantics. Every expected output below is what
-- Jinja2 3.1 renders for the same template and context (checked with Python).
local template = require("lib.template")

local function render(src, ctx, opts)
  return template.compile(src, (opts and opts.name) or "t.txt", opts)(ctx or {})
end

local function html(src, ctx, opts)
  opts = opts or {}
  opts.autoescape = true
  opts.name = opts.name or "t.html"
  return render(src, ctx, opts)
end

-- The error message of fn(), which must fail.
local function error_of(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function compile_error(src, name)
  return error_of(function() template.compile(src, name or "x.html") end)
end

local function loader(map)
  return function(name) return map[name] end
end

describe("lib.template", function()
  describe("output", function()
    it("prints variables, dotted paths and subscripts", function()
      local ctx = {name = "World", a = {b = {c = 3}}, l = {10, 20, 30}, d = {k = "v", ["two words"] = 2}}
      assert.equal("Hello World!", render("Hello {{ name }}!", ctx))
      assert.equal("3", render("{{ a.b.c }}", ctx))
      assert.equal("10 30 20 v 2", render("{{ l[0] }} {{ l[-1] }} {{ l.1 }} {{ d['k'] }} {{ d[\"two words\"] }}", ctx))
      assert.equal("b c", render("{{ 'abc'[1] }} {{ 'abc'[-1] }}"))
    end)

    it("renders undefined values as empty strings, but fails on an attribute of undefined", function()
      assert.equal("[][]", render("[{{ missing }}][{{ x.y }}]", {x = {}}))
      assert.equal("[]", render("[{{ x.y }}]", {x = herald.null}))
      local err = error_of(function() render("{{ missing.attr }}") end)
      assert.equal("t.txt:1: 'missing' is undefined", err)
    end)

    it("prints literals and values as Python does", function()
      assert.equal("None True False", render("{{ none }} {{ true }} {{ False }}"))
      assert.equal("[1, 'a'] {'a': 1}", render("{{ [1, 'a'] }} {{ {'a': 1} }}"))
      assert.equal("it's say \"hi\" a\nb é", render([[{{ "it's" }} {{ 'say "hi"' }} {{ 'a\nb' }} {{ '\u00e9' }}]]))
      assert.equal("ab", render("{{ 'a' 'b' }}"))
      assert.equal("None", render("{{ n }}", {n = herald.null}))
    end)

    it("does arithmetic with Python's results", function()
      assert.equal("7 3 3.5 2.0 1 1024 -3 2.5",
        render("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ -3 }} {{ 1.5 + 1 }}"))
      assert.equal("0.30000000000000004 1e+20 1000000000000000.0 1.0 1e-05",
        render("{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e15 }} {{ 1.0 }} {{ 1e-5 }}"))
      assert.equal("2.0 -4 2 1.5", render("{{ 5 // 2.0 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7.5 % 2 }}"))
      assert.equal("a1NoneTrue", render("{{ 'a' ~ 1 ~ none ~ true }}"))
      assert.equal("64", render("{{ 2 * 3 ~ 4 }}"))
      assert.equal("[1, 2, 3] ababab", render("{{ [1,2] + [3] }} {{ 'ab' * 3 }}"))
    end)

    it("evaluates conditional expressions and and/or as Python values", function()
      assert.equal("a|1w", render("{{ 'a' if x else 'b' }}{{ 'c' if y }}|{{ x or 'z' }}{{ y or 'w' }}", {x = 1}))
      assert.equal("True False  0 e", render("{{ not 0 }} {{ not 1 }} {{ 0 or '' }} {{ 1 and 0 }} {{ [] or 'e' }}"))
      assert.equal("3", render("{{ 1 if 0 else 2 if 0 else 3 }}"))
    end)
  end)

  describe("filters", function()
    it("upper, lower, title and capitalize (Jinja2's title rules, non-ASCII letters)", function()
      local ctx = {name = "hello wORLD-wide (o'neil) zoë"}
      assert.equal("HELLO WORLD-WIDE (O'NEIL) ZOË hello world-wide (o'neil) zoë " ..
        "Hello World-Wide (O'neil) Zoë Hello world-wide (o'neil) zoë",
        render("{{ name|upper }} {{ name|lower }} {{ name|title }} {{ name|capitalize }}", ctx))
      assert.equal("The[Quick]{Brown}<Fox>\tJumps", render("{{ s|title }}", {s = "the[quick]{brown}<fox>\tjumps"}))
      assert.equal("SSTRASSE ÉA", render("{{ 'ßtraße éa'|upper }}"))
    end)

    it("default applies to undefined only, or to anything false with boolean=true", function()
      assert.equal("d Y  d d None",
        render("{{ x|default('d') }} {{ y|default('d') }} {{ z|default('d') }} {{ z|default('d', true) }} " ..
          "{{ z|default('d', boolean=true) }} {{ n|default('d') }}", {y = "Y", z = "", n = herald.null}))
      assert.equal("|5", render("{{ x|d }}|{{ 0|default(5, true) }}"))
    end)

    it("truncate follows Jinja2's algorithm, leeway included", function()
      local s = {s = "foo bar baz qux"}
      assert.equal("foo...|foo ba...|foo bar...|foo bar baz qux|foo bar baz qux",
        render("{{ s|truncate(9) }}|{{ s|truncate(9, True) }}|{{ s|truncate(11, False, '...', 0) }}|" ..
          "{{ s|truncate(14) }}|{{ s|truncate(10) }}", s))
      assert.equal("The quick brown…|Th...|abcdefg...",
        render("{{ s|truncate(20, end='…') }}|{{ s|truncate(5, killwords=true, leeway=0) }}|" ..
          "{{ 'abcdefghijklmnopqrstuvwxyz'|truncate(10) }}", {s = "The quick brown fox jumps over the lazy dog"}))
      -- within length + leeway (5): unchanged
      assert.equal("Hello World", render("{{ 'Hello World'|truncate(9) }}"))
      -- counts characters, not bytes
      assert.equal("Zoë...|Zoë Zoë Z...", render("{{ s|truncate(10, leeway=0) }}|{{ s|truncate(12, true, leeway=0) }}",
        {s = "Zoë Zoë Zoë Zoë"}))
    end)

    it("join, length, first, last", function()
      local ctx = {l = {1, 2, 3}, d = {a = 1, b = 2}, users = {{name = "b"}, {name = "a"}}}
      assert.equal("1, 2, 3|123|3|3|2|1|3|a",
        render("{{ l|join(', ') }}|{{ l|join }}|{{ l|length }}|{{ 'zoë'|length }}|{{ d|length }}|" ..
          "{{ l|first }}|{{ l|last }}|{{ 'abc'|first }}", ctx))
      assert.equal("b, a", render("{{ users|map(attribute='name')|join(', ') }}", ctx))
      assert.equal("b-a", render("{{ users|join('-', attribute='name') }}", ctx))
      assert.equal("[]0", render("[{{ e|first }}{{ e|last }}]{{ missing|length }}", {e = {}}))
    end)

    it("round, int, float, abs", function()
      assert.equal("4.0 2.0 4.0 42 3.14 3.14 4.0 2.67",
        render("{{ 3.7|round }} {{ 2.5|round }} {{ 3.5|round }} {{ 42|round }} {{ 3.14159|round(2) }} " ..
          "{{ 3.14159|round(2, 'floor') }} {{ 3.1|round(method='ceil') }} {{ 2.675|round(2) }}"))
      assert.equal("10.0 1200.0 0.0 2.0 -0.0",
        render("{{ 9.99|round(1) }} {{ 1234.5678|round(-2) }} {{ 0.5|round }} {{ 1.5|round }} {{ -0.5|round }}"))
      assert.equal("42 4 0 7 3 -3 0 12 1",
        render("{{ '42'|int }} {{ '4.7'|int }} {{ 'abc'|int }} {{ 'abc'|int(7) }} {{ 3.9|int }} " ..
          "{{ -3.9|int }} {{ none|int }} {{ ' 12 '|int }} {{ true|int }}"))
      assert.equal("12 26 1000 1000", render("{{ 12|int }} {{ '0x1A'|int(0, 16) }} {{ '1_000'|int }} {{ '1e3'|int }}"))
      assert.equal("1 3.5 0.0 5.0", render("{{ -1|abs }} {{ '3.5'|float }} {{ 'x'|float }} {{ 5|float }}"))
    end)

    it("replace and trim", function()
      assert.equal("Goodbye World bba hi| hi",
        render("{{ 'Hello World'|replace('Hello', 'Goodbye') }} {{ 'aaa'|replace('a', 'b', 2) }} " ..
          "{{ '  hi  '|trim }}| {{ 'xxhixx'|trim('x') }}"))
      assert.equal("-a-a-a-", render("{{ 'aaa'|replace('', '-') }}"))
    end)

    it("list filters: sort, reverse, sum, min, max, list", function()
      assert.equal("[0, 1, 2] 1,4,7 [1, 2, 3] [3, 2, 1] 6 5 cba",
        render("{{ range(3)|list }} {{ range(1, 10, 3)|join(',') }} {{ [3,1,2]|sort }} " ..
          "{{ [3,1,2]|sort(reverse=true) }} {{ [1,2,3]|sum }} {{ [1,5,3]|max }} {{ 'abc'|reverse }}"))
      assert.equal("a", render("{{ (users|sort(attribute='age')|first).name }}",
        {users = {{name = "b", age = 3}, {name = "a", age = 1}}}))
    end)

    it("date formats ISO dates with English names", function()
      assert.equal("June 14, 2025", render("{{ d|date }}", {d = "2025-06-14"}))
      assert.equal("Saturday 14 June 2025 00:00", render("{{ d|date('%A %e %B %Y %H:%M') }}", {d = "2025-06-14"}))
      assert.equal("Fri Oct 03 18:30 2025-10-03", render("{{ t|date('%a %b %d %H:%M %Y-%m-%d') }}",
        {t = "2025-10-03T18:30:00"}))
      assert.equal("Feb 29, 2024 06:05 PM", render("{{ t|date('%b %e, %Y %I:%M %p') }}", {t = "2024-02-29T18:05"}))
      assert.equal("", render("{{ missing|date }}"))
      assert.equal("t.txt:1: date: expected an ISO date 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SS', got '2025-02-30'",
        error_of(function() render("{{ d|date }}", {d = "2025-02-30"}) end))
    end)

    it("currency formats amounts with symbols, separators and signs", function()
      assert.equal("$12,500.00 -€1,234.50 £0.50 $1,000.00 CHF 1,000.00 ¥1,000,000 $0.00",
        render("{{ 12500|currency }} {{ -1234.5|currency('EUR') }} {{ 0.5|currency('gbp') }} " ..
          "{{ 999.999|currency }} {{ '1000'|currency('CHF') }} {{ 1000000|currency('JPY') }} {{ 0|currency }}"))
      assert.equal("$1,234,567.89", render("{{ 1234567.891|currency('USD') }}"))
      assert.equal("-$5.00", render("{{ x|currency }}", {x = -5}))
    end)
  end)

  describe("if", function()
    it("chooses a branch with Jinja2 truthiness", function()
      local src = "{% if a %}A{% elif b %}B{% else %}C{% endif %}"
      assert.equal("B", render(src, {a = 0, b = {1}}))
      assert.equal("C", render(src, {a = "", b = {}}))
      assert.equal("C", render(src, {a = herald.null, b = false}))
      assert.equal("A", render(src, {a = "0"}))
      assert.equal("C", render(src, {}))
    end)

    it("supports and, or, not, comparisons, in and tests", function()
      assert.equal("yes", render("{% if a and not b or c %}yes{% else %}no{% endif %}", {a = 1, b = "", c = 0}))
      assert.equal("123456", render("{% if 'b' in 'abc' %}1{% endif %}{% if 2 in [1,2] %}2{% endif %}" ..
        "{% if 'k' in d %}3{% endif %}{% if 4 not in [1] %}4{% endif %}{% if 1 < 2 <= 2 %}5{% endif %}" ..
        "{% if 'a' != 'b' %}6{% endif %}", {d = {k = 1}}))
      assert.equal("duN", render("{% if x is defined %}d{% endif %}{% if y is not defined %}u{% endif %}" ..
        "{% if n is none %}N{% endif %}", {x = herald.null, n = herald.null}))
      assert.equal("True True False True True True",
        render("{{ x is divisibleby 3 }} {{ x is even }} {{ x is odd }} {{ 'a' is string }} {{ 1 is number }} " ..
          "{{ x is eq 6 }}", {x = 6}))
      assert.equal("True False True True", render("{{ 1 == true }} {{ '1' == 1 }} {{ none == none }} {{ [1] == [1] }}"))
    end)
  end)

  describe("for", function()
    it("exposes loop.index, index0, first, last, length, revindex", function()
      assert.equal("1/0/True/False/3/3:a 2/1/False/False/3/2:b 3/2/False/True/3/1:c ",
        render("{% for x in l %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.first }}/{{ loop.last }}/" ..
          "{{ loop.length }}/{{ loop.revindex }}:{{ x }} {% endfor %}", {l = {"a", "b", "c"}}))
      assert.equal("-2 1-3 2- ", render("{% for x in l %}{{ loop.previtem }}-{{ loop.nextitem }} {% endfor %}",
        {l = {1, 2, 3}}))
      assert.equal("oddevenodd", render("{% for x in l %}{{ loop.cycle('odd', 'even') }}{% endfor %}", {l = {1, 2, 3}}))
    end)

    it("runs else for an empty or undefined sequence", function()
      assert.equal("empty|none", render("{% for x in l %}{{ x }}{% else %}empty{% endfor %}|" ..
        "{% for x in m %}{{ x }}{% else %}none{% endfor %}", {l = {}}))
    end)

    it("unpacks items(), filters with if, nests with their own loop", function()
      assert.equal("a=1;b=2;", render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {d = {b = 2, a = 1}}))
      assert.equal("2232", render("{% for x in l if x > 1 %}{{ x }}{{ loop.length }}{% endfor %}", {l = {1, 2, 3}}))
      assert.equal("111 122 211 222 ", render("{% for a in l %}{% for b in l %}{{ a }}{{ b }}{{ loop.index }} " ..
        "{% endfor %}{% endfor %}", {l = {1, 2}}))
      assert.equal("37", render("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}"))
      assert.equal("ab", render("{% for c in 'ab' %}{{ c }}{% endfor %}"))
    end)

    it("iterates a dict's keys (in sorted order: Lua tables keep no insertion order)", function()
      assert.equal("ab", render("{% for k in d %}{{ k }}{% endfor %}", {d = {b = 1, a = 2}}))
    end)

    it("iterates JSON arrays from herald.json_decode", function()
      local ctx = herald.json_decode('{"l": [{"n": "x"}, {"n": "y"}], "e": []}')
      assert.equal("x,y|none", render("{% for i in l %}{{ i.n }}{{ ',' if not loop.last }}{% endfor %}|" ..
        "{% for i in e %}{% else %}none{% endfor %}", ctx))
    end)
  end)

  describe("set", function()
    it("scopes assignments in a loop to the loop, as Jinja2 does", function()
      assert.equal("5125", render("{% set x = 5 %}{{ x }}{% for i in l %}{% set x = i %}{{ x }}{% endfor %}{{ x }}",
        {l = {1, 2}}))
      assert.equal("24Y", render("{% for x in l %}{% set y = x * 2 %}{{ y }}{% endfor %}{{ y }}", {l = {1, 2}, y = "Y"}))
      assert.equal("13", render("{{ x }}{% set x = 3 %}{{ x }}", {x = 1}))
    end)

    it("carries a value out of a loop with namespace()", function()
      assert.equal("6", render("{% set ns = namespace(n=0) %}{% for i in l %}{% set ns.n = ns.n + i %}{% endfor %}" ..
        "{{ ns.n }}", {l = {1, 2, 3}}))
    end)

    it("unpacks tuples and captures blocks", function()
      assert.equal("12<b>1</b>", render("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c %}<b>{{ a }}</b>{% endset %}{{ c }}"))
      assert.equal("<b>&lt;</b>|11", html("{% set c %}<b>{{ a }}</b>{% endset %}{{ c }}|{{ c|length }}", {a = "<"}))
    end)

    it("does not modify the caller's context", function()
      local ctx = {x = 1}
      assert.equal("2", render("{% set x = 2 %}{{ x }}", ctx))
      assert.equal(1, ctx.x)
    end)
  end)

  describe("whitespace control and comments", function()
    it("strips whitespace next to - delimiters, newlines included", function()
      assert.equal("aBcd  e  fg", render("a  {{- b -}}  c\n  {%- if true -%}\n  d  \n{%- endif %}  e {# comment #} f " ..
        "{#- c -#} g", {b = "B"}))
      assert.equal("d", render("{% if true -%}\n  d  \n{%- endif %}"))
    end)

    it("keeps Jinja2's defaults: block tags keep their newlines, one trailing newline is dropped", function()
      assert.equal("line1\n\nx\n\nend", render("line1\n{% if true %}\nx\n{% endif %}\nend\n"))
      assert.equal("\n  <li>1</li>\n  <li>2</li>", render("  {%- for i in [1,2] %}\n  <li>{{ i }}</li>\n  {%- endfor %}\n"))
      assert.equal("<ul>\n<li>1</li>\n<li>2</li>\n</ul>",
        render("<ul>\n{% for i in [1,2] -%}\n<li>{{ i }}</li>\n{% endfor -%}\n</ul>"))
    end)

    it("leaves raw blocks unparsed", function()
      assert.equal("{{ not parsed }}{% if %}", render("{% raw %}{{ not parsed }}{% if %}{% endraw %}"))
    end)
  end)

  describe("autoescape", function()
    it("escapes every {{ }} in HTML: <script>, quotes, ampersands", function()
      assert.equal("&lt;script&gt;alert(&#34;x&#34;) &amp; &#39;y&#39;&lt;/script&gt;",
        html("{{ s }}", {s = "<script>alert(\"x\") & 'y'</script>"}))
      assert.equal('<a href="&#34; onclick=&#34;x">t</a>', html('<a href="{{ u }}">t</a>', {u = '" onclick="x'}))
    end)

    it("does not double-escape |e, and |safe passes markup through", function()
      assert.equal("&lt;b&gt;&amp;&lt;/b&gt;|&lt;b&gt;&amp;&lt;/b&gt;|&lt;b&gt;&amp;&lt;/b&gt;|<b>&</b>|&LT;B&GT;&AMP;&LT;/B&GT;",
        html("{{ s }}|{{ s|e }}|{{ s|e|e }}|{{ s|safe }}|{{ s|escape|upper }}", {s = "<b>&</b>"}))
    end)

    it("keeps markup through string filters, joins and ~ as Jinja2's Markup does", function()
      assert.equal("&lt;a&gt;, b|&lt;a&gt;, b", html("{{ l|join(', ') }}|{{ l|join(', '|safe) }}", {l = {"<a>", "b"}}))
      assert.equal("a&amp;<br>b", html("{{ l|join('<br>'|safe) }}", {l = {"a&", "b"}}))
      assert.equal("<b>&lt;i&gt;|&lt;b&gt;&lt;i&gt;", html("{{ (a|safe) ~ b }}|{{ a ~ b }}", {a = "<b>", b = "<i>"}))
      -- markupsafe 2.1 (Debian 12's Jinja2 3.1): Markup.replace escapes the searched text too
      assert.equal("&lt;X&gt;|[b&gt;|[b&gt;", html("{{ a|e|replace('b', 'X') }}|{{ a|replace('<', '['|safe) }}|" ..
        "{{ a|replace('<', '[') }}", {a = "<b>"}))
      assert.equal("&lt;b&gt;hello...|&lt;b&gt;hello world &amp; more&lt;/b&gt;",
        html("{{ a|e|truncate(20) }}|{{ a|truncate(20) }}", {a = "<b>hello world & more</b>"}))
    end)

    it("does not escape text templates", function()
      assert.equal("<b>&</b>|&lt;b&gt;&amp;&lt;/b&gt;", render("{{ s }}|{{ s|e }}", {s = "<b>&</b>"}))
      assert.equal("<b>", template.compile("{{ s }}", "x.sms")({s = "<b>"}))
      assert.equal("&lt;b&gt;", template.compile("{{ s }}", "x.html")({s = "<b>"}))
    end)
  end)

  describe("include and extends", function()
    it("includes a template with the current variables, loop variables included", function()
      local opts = {loader = loader({inc = "[{{ i }}{{ name }}]"})}
      assert.equal("[N]|[1N][2N]", render("{% include 'inc' %}|{% for i in l %}{% include 'inc' %}{% endfor %}",
        {l = {1, 2}, name = "N"}, opts))
      assert.equal("[G]H|G", render("{% set g = 'G' %}{% include 'inc' %}|{{ g }}", {},
        {loader = loader({inc = "[{{ g }}]{% set g = 'H' %}{{ g }}"})}))
      assert.equal("[]", render("{% include 'inc' without context %}", {a = 1},
        {loader = loader({inc = "[{{ a }}]"})}))
      assert.equal("ok", render("{% include 'missing' ignore missing %}ok", {}, {loader = loader({})}))
      assert.equal("I", render("{% include ['nope', 'inc'] %}", {}, {loader = loader({inc = "I"})}))
      assert.equal("[x]", render("{% include name %}", {name = "inc", v = "x"}, {loader = loader({inc = "[{{ v }}]"})}))
    end)

    it("extends a layout: blocks override, super() renders the parent's, text outside blocks is dropped", function()
      local base = "<{% block title %}base{% endblock %}|{% block body %}{% endblock %}|{% block foot %}F{% endblock %}>"
      assert.equal("<T-base|B1|F>", render("{% extends 'base' %}{% block title %}T-{{ super() }}{% endblock %}" ..
        "ignored{% block body %}B{{ x }}{% endblock %}", {x = 1}, {loader = loader({base = base})}))
      assert.equal("[CMB]", render("{% extends 'mid' %}{% block a %}C{{ super() }}{% endblock %}", {},
        {loader = loader({base = "[{% block a %}B{% endblock %}]",
          mid = "{% extends 'base' %}{% block a %}M{{ super() }}{% endblock %}"})}))
      assert.equal("child|child", render("{% extends 'base' %}{% set t = 'child' %}{% block b %}{{ t }}{% endblock %}",
        {}, {loader = loader({base = "{{ t }}|{% block b %}{% endblock %}"})}))
      assert.equal("AX", render("{% extends 'base' %}{% block b %}X{% endblock %}", {},
        {loader = loader({base = "{% block a %}A{% block b %}B{% endblock %}{% endblock %}"})}))
    end)

    it("a frozen template (compiler.freeze) loads in a fresh cache and renders the same, errors included", function()
      local compiler = require("lib.template.compiler")
      local files = {["base.html"] = "<{% block a %}B{% endblock %}|{% include 'frag.html' %}>",
        ["frag.html"] = "{{ v }}\n{{ v.missing.deeper }}",
        ["page.html"] = "{% extends 'base.html' %}{% block a %}P{{ super() }}{% endblock %}"}
      local cache = {}
      local first = template.compile(files["page.html"], "page.html", {loader = loader(files), cache = cache})
      local frozen = {}
      for name, tpl in pairs(cache) do frozen[name] = compiler.freeze(tpl) end
      assert.is_not_nil(frozen["base.html"])
      assert.is_not_nil(frozen["frag.html"])
      -- the fresh cache compiles nothing: the loader is never asked
      local asked = 0
      local again = template.compile("not even a template {%", "page.html", {cache = {},
        precompiled = frozen, loader = function(n) asked = asked + 1 return files[n] end})
      assert.equal(0, asked)
      local ok1, e1 = pcall(first, {v = "<"})
      local ok2, e2 = pcall(again, {v = "<"})
      assert.is_false(ok1)
      assert.is_false(ok2)
      assert.equal(e1, e2)
      assert.matches("^frag.html:2: ", e2)
      assert.equal(first({v = {missing = {deeper = "d"}}}), again({v = {missing = {deeper = "d"}}}))
      -- what a frozen template includes and is not frozen compiles from source
      local lone = template.compile(files["page.html"], "page.html", {cache = {},
        precompiled = {["page.html"] = frozen["page.html"]}, loader = loader(files)})
      assert.equal(first({v = {missing = {deeper = 1}}}), lone({v = {missing = {deeper = 1}}}))
    end)

    it("escapes by the included template's own name", function()
      local opts = {loader = loader({["frag.html"] = "{{ v }}", ["frag.txt"] = "{{ v }}"})}
      assert.equal("&lt;|<", render("{% include 'frag.html' %}|{% include 'frag.txt' %}", {v = "<"}, opts))
    end)
  end)

  describe("errors name the template and line", function()
    it("an unclosed tag, at the line it opened", function()
      assert.equal("x.html:3: unclosed 'if': expected 'elif', 'else' or 'endif' before the end of the template",
        compile_error("a\nb\n{% if x %}\nyes\n"))
      assert.equal("x.html:2: unclosed '{{' (missing '}}')", compile_error("a\n{{ x\n"))
      assert.equal("x.html:1: unclosed comment (missing '#}')", compile_error("{# x"))
    end)

    it("a mismatched end tag", function()
      assert.equal("x.html:3: unexpected 'endfor': expected 'elif', 'else' or 'endif' to close 'if' from line 2",
        compile_error("{% for x in y %}\n{% if a %}\n{% endfor %}"))
      assert.equal("x.html:1: unexpected 'endif': no open block to end", compile_error("{% endif %}"))
    end)

    it("an unknown filter, tag or test, or a bad expression", function()
      assert.equal("x.html:2: unknown filter 'nope'", compile_error("ok\n{{ x|nope }}"))
      assert.equal("x.html:1: unknown tag 'frobnicate'", compile_error("{% frobnicate %}"))
      assert.equal("x.html:1: unknown test 'shiny'", compile_error("{{ x is shiny }}"))
      assert.equal("x.html:1: unexpected end of tag", compile_error("{{ 1 + }}"))
      assert.equal("x.html:4: unterminated string", compile_error("\n\n\n{{ 'abc }}"))
      assert.equal("x.html:1: filter 'truncate' got an unexpected keyword argument 'bogus'",
        compile_error("{{ x|truncate(5, bogus=1) }}"))
      assert.equal("x.html:1: unknown function 'foo'", compile_error("{{ foo() }}"))
      assert.equal("x.html:1: block 'a' defined twice", compile_error("{% block a %}{% endblock %}{% block a %}{% endblock %}"))
    end)

    it("at render time: a filter given the wrong type, an undefined attribute, a bad comparison", function()
      assert.equal("t.txt:2: truncate: expected a string, got int",
        error_of(function() render("line1\n{{ x|truncate(5) }}", {x = 5}) end))
      assert.equal("t.txt:3: 'c' is undefined", error_of(function() render("{{ a.b }}\n\n{{ c.d }}", {a = {}}) end))
      assert.equal("t.txt:1: '<' not supported between instances of 'int' and 'str'",
        error_of(function() render("{% if 1 < 'a' %}{% endif %}") end))
      assert.equal("t.txt:1: currency: expected a number, got 'abc'",
        error_of(function() render("{{ x|currency }}", {x = "abc"}) end))
    end)

    it("in an included template, with that template's name and line", function()
      local err = error_of(function()
        render("{% include 'inc.txt' %}", {}, {loader = loader({["inc.txt"] = "ok\n{{ 1 + 'a' }}"})})
      end)
      assert.equal("inc.txt:2: unsupported operand type(s) for +: 'int' and 'str'", err)
      assert.equal("inc.txt:2: unexpected end of tag",
        error_of(function() template.compile("{% include 'inc.txt' %}", "p.html",
          {loader = loader({["inc.txt"] = "ok\n{% if %}"})}) end))
      assert.equal("p.html:1: template 'nope' not found",
        error_of(function() template.compile("{% extends 'nope' %}", "p.html", {loader = loader({})}) end))
    end)
  end)

  it("compiles to a text chunk with an empty environment", function()
    local src = template.source("{% for x in l %}{{ x }}{% endfor %}", "s.txt")
    assert.is_string(src)
    assert.is_truthy(load(src, "=s", "t", {}))
    -- nothing the template says can reach a global
    assert.equal("", render("{{ os }}{{ io }}{{ string }}{{ _G }}"))
  end)

  it("renders an 11-variable template quickly", function()
    local src = "Hi {{ a }}, {{ b }} {{ c|upper }} on {{ d }} at {{ e }} with {{ f }}, {{ g }}, {{ h }}, " ..
      "{{ i|default('x') }}, {{ j }} and {{ k }}."
    local r = template.compile(src, "bench.txt")
    local ctx = {a = "Ana", b = "x", c = "wedding", d = "June 14", e = "the Club", f = 1, g = 2, h = 3, j = 5, k = 6}
    assert.equal("Hi Ana, x WEDDING on June 14 at the Club with 1, 2, 3, x, 5 and 6.", r(ctx))
    local n, t0 = 20000, os.clock()
    for _ = 1, n do r(ctx) end
    local us = (os.clock() - t0) / n * 1e6
    assert.is_true(us < 50, ("%.1f µs per render"):format(us))
  end)
end)

describe("lib.template: differences the differential test found (issue 14)", function()
  it("prints an empty mapping as {} and joins a missing attribute as ''", function()
    assert.equal("{}|{}|{'a': 1}", render("{{ {} }}|{{ dict() }}|{{ {'a': 1} }}"))
    assert.equal(", x", render("{{ l|join(', ', attribute='n') }}", {l = {{}, {n = "x"}}}))
  end)

  it("treats booleans as numbers and refuses integers past 64 bits", function()
    assert.equal("2|2|-1", render("{{ true + 1 }}|{{ true * 2 }}|{{ -true }}"))
    assert.matches("integer overflow in %*",
      error_of(function() render("{{ n * n }}", {n = 4611686018427387904}) end))
    assert.matches("integer overflow in %+",
      error_of(function() render("{{ n + n }}", {n = 4611686018427387904}) end))
    assert.matches("does not fit in 64 bits", error_of(function() render("{{ 1e20|int }}") end))
    assert.equal("1", render("{{ 1 ** 100000000000 }}")) -- no loop of 10^11 steps
    -- CPython's float floor division, not floor(a / b) (which gives -99999999999999.0)
    assert.equal("-100000000000000.0|-4.0|3.0",
      render("{{ (1000000 - 1e20) // 1000000 }}|{{ 7.5 // -2 }}|{{ 7 // 2.0 }}"))
  end)

  it("refuses map('filter') and a test followed by if, in, is or not, at compile time", function()
    assert.matches("map: a filter name", error_of(function() render("{{ l|map('upper')|list }}") end))
    assert.matches("put the test in parentheses",
      error_of(function() render("{{ a is defined if b else c }}") end))
    assert.equal("True", render("{{ (a is defined) if b else c }}", {a = 1, b = true}))
  end)

  it("maps case as Python does: final sigma, Greek tonos, ligatures, dotless i", function()
    assert.equal("σοφος|Σοφος σοφός|ΣΟΦΌΣ", render("{{ 'ΣΟΦΟΣ'|lower }}|{{ 'ΣΟΦΟΣ σοφός'|capitalize }}|" ..
      "{{ 'σοφός'|upper }}"))
    assert.equal("FINE|Fine|I", render("{{ 'ﬁne'|upper }}|{{ 'ﬁne'|capitalize }}|{{ 'ı'|upper }}"))
  end)

  it("trims Unicode whitespace as str.strip() does", function()
    assert.equal("x\u{2003}y|é", render("{{ '\u{2003} x\u{2003}y\u{3000}\u{A0}'|trim }}|{{ '\u{85}é\u{2009}'|trim }}"))
  end)

  it("counts words as Python's \\w+ does", function()
    assert.equal("2|2|3", render("{{ 'a-b_c'|wordcount }}|{{ 'a — b'|wordcount }}|{{ '1 € ou 2'|wordcount }}"))
  end)

  it("replaces in escaped markup as markupsafe 2.1 does (the searched text escaped too)", function()
    assert.equal("&lt;b&gt;+", html("{{ a|e|replace('&', '+') }}", {a = "<b>&"}))
  end)
end)
