#!/usr/bin/env python3
"""gen_corpus.py - writes the labelled corpus the classifier is measured on:
tests/data/corpus/<detector>.pos (must fire) and .neg (hard negatives: must
not fire), one sample per line, for each built-in detector. Standard library
only, fixed seed: running it again gives the same files.
Usage: python3 tests/data/gen_corpus.py   (from the repository root)"""
import base64
import json
import os
import random
import string

R = random.Random(20240601)
# Case choices for IBANs come from their own generator: they draw nothing from R.
CASE = random.Random(20240602)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
N = 240

FIRST = ["jane", "john", "maria", "li", "ahmed", "olga", "pierre", "anna", "raj", "sofia",
         "kenji", "lucas", "emma", "noah", "fatima", "diego"]
LAST = ["doe", "smith", "garcia", "wang", "khan", "ivanova", "dubois", "muller", "patel",
        "rossi", "tanaka", "silva", "brown", "nguyen", "haddad", "lopez"]
DOMAINS = ["example.com", "corp.example.org", "mail.co.uk", "uni-berlin.de", "health.gov",
           "acme.io", "bank.fr", "clinic.net", "startup.ai", "post.example.museum",
           "xn--bcher-kva.example", "sub.dept.company.co.jp"]
PROSE = ["Please review the attached summary before the meeting.",
         "The quarterly numbers look better than expected.",
         "We shipped the new release last week.",
         "Can you rewrite this paragraph in plain English?",
         "The patient was discharged in good condition.",
         "Budget approved; see section four for details."]


def ctx(sample):
    """Put a sample in one of several everyday contexts."""
    t = R.choice([
        "{}", "Contact: {}", "please reach me at {} tomorrow", "({})", "\"{}\"",
        "value={}", "- {}", "Details: {}; thanks.", "{} is the one on file.",
        "<td>{}</td>", "{{\"field\": \"{}\"}}", "note: {}.",
        # glued to punctuation, as in CSV rows, paths, identifiers and labels
        "Jane,{},NY", "7,{},12/29,42", "id_{}", "#{}", "/pay/{}/", "ref:{}", "[{}]",
    ])
    return t.format(sample)


def digits(n):
    return "".join(R.choice(string.digits) for _ in range(n))


def alnum(n, alphabet=string.ascii_letters + string.digits):
    return "".join(R.choice(alphabet) for _ in range(n))


# ---- email -----------------------------------------------------------------

def email_pos():
    f, l, d = R.choice(FIRST), R.choice(LAST), R.choice(DOMAINS)
    local = R.choice([f"{f}.{l}", f"{f[0]}{l}", f"{f}_{l}{R.randint(1, 99)}", f"{f}+news",
                      f"{f}.{l}-{R.randint(1, 9)}", f"{f.upper()}.{l.capitalize()}", f"{f}%ops"])
    e = f"{local}@{d}"
    return R.choice([ctx(e), f"mailto:{e}", f"<{e}>", f"{f.capitalize()} {l.capitalize()} <{e}>",
                     f"cc: {e}, thanks"])


def email_neg():
    f = R.choice(FIRST)
    return R.choice([
        f"ping @{f} on slack", f"use icon@{R.randint(2, 3)}x.png in retina mode",
        f"npm install lodash@4.17.{R.randint(1, 21)}", f"ssh {f}@localhost",
        "@Override public void run()", f"price @ ${R.randint(2, 99)} each",
        f"{f} at example dot com", f"{f}@home tonight", f"version@{R.randint(1, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}",
        f"@@ -{R.randint(1, 90)},7 +{R.randint(1, 90)},8 @@", f"@{f}_{R.choice(LAST)} thanks!",
        f"pip install requests=={R.randint(1, 2)}.{R.randint(0, 31)}.0", R.choice(PROSE),
        f"{f}@ example.com", f"the @media query", f"img@{R.randint(2, 4)}x.jpg",
        f"docker pull python@sha256:{alnum(64, '0123456789abcdef')}",
    ])


# ---- phone -----------------------------------------------------------------

def us_number():
    return R.randint(201, 989), R.randint(200, 999), R.randint(0, 9999)


def phone_pos():
    a, b, c = us_number()
    return ctx(R.choice([
        f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"{a} {b} {c:04d}",
        f"+1 {a} {b} {c:04d}", f"+1-{a}-{b}-{c:04d}", f"1-{a}-{b}-{c:04d}", f"+1 ({a}) {b}-{c:04d}",
        f"+44 20 {R.randint(7000, 8999)} {digits(4)}", f"020 {R.randint(7000, 8999)} {digits(4)}",
        f"07700 {digits(6)}", f"+44 7700 {digits(6)}", f"+44 (0)20 {R.randint(7000, 8999)} {digits(4)}",
        f"030 {R.randint(1000000, 99999999)}", f"+49 30 {R.randint(1000000, 99999999)}",
        f"0151 {digits(8)}", f"+49 151 {digits(8)}", f"030/{digits(7)}", f"(030) {digits(7)}",
        f"01 {digits(2)} {digits(2)} {digits(2)} {digits(2)}", f"06.{digits(2)}.{digits(2)}.{digits(2)}.{digits(2)}",
        f"+33 1 {digits(2)} {digits(2)} {digits(2)} {digits(2)}", f"+33 6 {digits(2)} {digits(2)} {digits(2)} {digits(2)}",
        f"+49{R.randint(1500000000, 1799999999)}", f"+1{a}{b}{c:04d}", f"0044 20 {R.randint(7000, 8999)} {digits(4)}",
        f"+34 {R.randint(600, 699)} {digits(3)} {digits(3)}", f"+61 2 {digits(4)} {digits(4)}",
    ]))


def phone_neg():
    y, mo, d = R.randint(1990, 2030), R.randint(1, 12), R.randint(1, 28)
    h, mi, s = R.randint(0, 23), R.randint(0, 59), R.randint(0, 59)
    return R.choice([
        f"at {y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}", f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
        f"on {d:02d}/{mo:02d}/{y}", f"on {d:02d}.{mo:02d}.{y}", f"epoch {R.randint(1500000000, 1800000000)}",
        f"version {R.randint(1, 12)}.{R.randint(0, 30)}.{R.randint(0, 99)}", f"Windows 10.0.{R.randint(10000, 22631)}.{R.randint(100, 4000)}",
        f"order {R.randint(1000000000, 9999999999)}", f"ORD-{R.randint(100, 999)}-{R.randint(100, 999)}-{R.randint(1000, 9999)}",
        f"invoice #{R.randint(100000, 99999999)}", f"pi is {R.random() * 10:.10f}", f"total ${R.randint(1000, 999999):,}.{R.randint(0, 99):02d}",
        f"zip {R.randint(10000, 99999)}-{R.randint(1000, 9999)}", f"ISBN 978-{R.randint(0, 9)}-{R.randint(10, 99)}-{R.randint(100000, 999999)}-{R.randint(0, 9)}",
        f"{R.randint(1, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}", f"pages {R.randint(1, 300)}-{R.randint(301, 600)}",
        f"score {R.randint(0, 9)}-{R.randint(0, 9)}", f"card 4111 1111 1111 1111", f"ssn 123-45-6789",
        f"id {alnum(8, '0123456789abcdef')}-{alnum(4, '0123456789abcdef')}-4{alnum(3, '0123456789abcdef')}-a{alnum(3, '0123456789abcdef')}-{alnum(12, '0123456789abcdef')}",
        f"sha {alnum(40, '0123456789abcdef')}", f"{R.randint(1, 9)} + {R.randint(1, 9)} = {R.randint(2, 18)}",
        f"coords {R.uniform(-90, 90):.4f}, {R.uniform(-180, 180):.4f}", f"ran {R.randint(100, 999)} {R.randint(100, 999)} {R.randint(10, 99)} times",
        f"{R.randint(1, 31)} {R.choice(['Jan', 'Mar', 'Oct'])} {y} {h:02d}:{mi:02d}", f"build {y}{mo:02d}{d:02d}.{R.randint(1, 9)}",
        f"qty {R.randint(10, 99)} x {R.randint(100, 999)} mm", f"1,{R.randint(100, 999)},{R.randint(100, 999)},{R.randint(100, 999)} rows",
        R.choice(PROSE), f"{R.randint(1000, 9999)} {R.randint(1000, 9999)} {R.randint(1000, 9999)} {R.randint(1000, 9999)}",
    ])


# ---- credit card -----------------------------------------------------------

def luhn_complete(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


SCHEMES = [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16),
           ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("644", 16), ("3528", 16),
           ("3589", 16), ("36", 14), ("300", 14), ("62", 16), ("62", 19), ("6759", 16), ("2200", 16)]


def card_number():
    prefix, length = R.choice(SCHEMES)
    return luhn_complete(prefix + digits(length - len(prefix) - 1))


def fmt_card(num, sep):
    if len(num) == 15:
        return sep.join([num[:4], num[4:10], num[10:]])
    return sep.join(num[i:i + 4] for i in range(0, len(num), 4))


def card_pos():
    num = card_number()
    return ctx(R.choice([num, fmt_card(num, " "), fmt_card(num, "-"), num]))


def is_card(d):
    return 13 <= len(d) <= 19 and luhn_ok(d) and any(d.startswith(p) and 13 <= len(d) <= 19 for p, _ in SCHEMES)


def luhn_ok(d):
    total = 0
    for i, c in enumerate(reversed(d)):
        v = int(c) * (2 if i % 2 else 1)
        total += v - 9 if v > 9 else v
    return total % 10 == 0


def card_neg():
    # a hard negative must be no card at all: not the number, and not a
    # card followed by more digits (16 + a 3-digit group reads as card + CVV;
    # Maestro runs to 19 digits), so such draws are made again
    while True:
        num = card_number()
        bad = num[:-1] + str((int(num[-1]) + R.randint(1, 9)) % 10)
        longer = num + str(R.randint(0, 9))
        if not any(is_card(bad[:k]) for k in range(13, len(bad) + 1)) and not is_card(longer):
            break
    unknown = luhn_complete(R.choice("1789") + digits(14))
    return R.choice([
        ctx(bad), ctx(fmt_card(bad, " ")), ctx(unknown), f"ref {longer}",
        f"order {R.randint(10 ** 9, 10 ** 12)}", f"ts {R.randint(1500000000000, 1800000000000)}",
        f"uuid {alnum(32, '0123456789abcdef')}", f"tx {alnum(12, '0123456789')}",
        f"phone (555) 123-{R.randint(1000, 9999)}", f"ISBN 978{digits(10)}", R.choice(PROSE),
        f"serial {num[:-3]}", f"{digits(4)}-{digits(4)}-{digits(4)}-{digits(3)}X",
    ])


# ---- US SSN ----------------------------------------------------------------

def ssn_parts():
    area = R.choice([R.randint(1, 665), R.randint(667, 899)])
    return area, R.randint(1, 99), R.randint(1, 9999)


def ssn_pos():
    a, g, s = ssn_parts()
    return ctx(R.choice([f"{a:03d}-{g:02d}-{s:04d}", f"{a:03d} {g:02d} {s:04d}", f"SSN: {a:03d}{g:02d}{s:04d}",
                         f"social security number {a:03d}{g:02d}{s:04d}", f"SSN {a:03d}-{g:02d}-{s:04d}"]))


def ssn_neg():
    a, g, s = ssn_parts()
    return R.choice([
        f"{R.choice([0, 666, R.randint(900, 999)]):03d}-{g:02d}-{s:04d}", f"{a:03d}-00-{s:04d}",
        f"{a:03d}-{g:02d}-0000", f"zip {R.randint(10000, 99999)}-{R.randint(1000, 9999)}",
        f"order {a:03d}{g:02d}{s:04d}", f"call {R.randint(201, 989)}-{R.randint(200, 999)}-{R.randint(1000, 9999)}",
        f"on {R.randint(1990, 2030)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}", f"{a:03d}-{g:02d}-{s % 1000:03d}",
        f"ISBN 0-{R.randint(100, 999)}-{R.randint(10000, 99999)}-{R.randint(0, 9)}", f"AB-{a:03d}-{g:02d}-{s:04d}",
        f"{a:03d}-{g:02d}-{s:04d}-{R.randint(10, 99)}", f"part P{a:03d}.{g:02d}.{s:04d}", R.choice(PROSE),
        f"v{a}.{g}.{s}", f"{a:03d}-{R.randint(100, 999)}-{s:04d}",
    ])


# ---- IBAN ------------------------------------------------------------------

IBAN_LEN = {"DE": 22, "GB": 22, "FR": 27, "ES": 24, "IT": 27, "NL": 18, "BE": 16, "CH": 21,
            "AT": 20, "PL": 28, "SE": 24, "NO": 15, "DK": 18, "IE": 22, "PT": 25, "LU": 20,
            "FI": 18, "CZ": 24, "GR": 27, "RO": 24, "HU": 28, "SA": 24, "AE": 23, "TR": 26}


def iban_check(country, bban):
    rearranged = bban + country + "00"
    num = "".join(str(int(ch, 36)) for ch in rearranged)
    return f"{98 - int(num) % 97:02d}"


def iban_raw():
    country = R.choice(list(IBAN_LEN))
    n = IBAN_LEN[country] - 4
    if country in ("GB", "NL", "IE"):
        bban = alnum(4, string.ascii_uppercase) + digits(n - 4)
    elif country in ("FR", "IT"):
        bban = digits(n - 3) + alnum(3, string.ascii_uppercase + string.digits)
    else:
        bban = digits(n)
    return country, bban


def grouped(s):
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def any_case(s):
    """As written, in lower case, capitalised (Gb82west...) or in mixed case."""
    how = CASE.randrange(4)
    if how == 1:
        return s.lower()
    if how == 2:
        return s.capitalize()
    if how == 3:
        return "".join(ch.lower() if CASE.random() < 0.5 else ch for ch in s)
    return s


def iban_pos():
    c, b = iban_raw()
    iban = any_case(c + iban_check(c, b) + b)
    return ctx(R.choice([iban, grouped(iban), f"IBAN {grouped(iban)}", f"IBAN: {iban}"]))


def iban_neg():
    c, b = iban_raw()
    good = iban_check(c, b)
    wrong = f"{(int(good) + R.randint(1, 96)) % 97 + 2:02d}"
    if wrong == good:
        wrong = f"{(int(good) + 1) % 97 + 2:02d}"
    neg = R.choice([
        ctx(any_case(c + wrong + b)), ctx(grouped(any_case(c + wrong + b))), ctx(any_case(c + good + b[:-1])),
        ctx("QQ" + good + b), f"BIC DEUTDEFF{R.randint(100, 999)}", f"VAT {c}{digits(9)}",
        f"postcode SW1A {R.randint(1, 9)}AA", f"part AB{digits(2)} {digits(4)} {digits(4)}",
        f"flight LH{R.randint(100, 9999)} at gate B{R.randint(1, 60)}", R.choice(PROSE),
        f"ticket {c}{digits(2)}-{digits(6)}", f"model {c}{digits(4)}X{digits(10)}",
    ])
    return CASE.choice([neg, neg, neg, lower_case_neg(c, good + b)])


def is_iban(s):
    s = s.upper()
    if len(s) != IBAN_LEN.get(s[:2], 0) or not s[2:4].isdigit() or not s.isalnum():
        return False
    return int("".join(str(int(ch, 36)) for ch in s[4:] + s[:4])) % 97 == 1


def lower_case_neg(c, rest):
    """Lower-case look-alikes: a valid IBAN glued to a word or a digit, and
    codes and identifiers that start with two letters but are no IBAN."""
    while True:
        d = "".join(CASE.choice(string.digits) for _ in range(IBAN_LEN[c] - 2))
        if not is_iban(c + d):
            break
    return CASE.choice([f"x{(c + rest).lower()}", f"7{(c + rest).lower()}", f"ref {c.lower()}{d}",
                        f"sku-{c.lower()}{d[:6]}", f"vat {c.lower()}{d[:9]}", f"build {c.lower()}{d[:2]}-{d[2:6]}"])


# ---- secret keys -----------------------------------------------------------

def b64url(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt():
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": digits(8), "name": R.choice(FIRST), "iat": R.randint(1500000000, 1800000000)}).encode())
    return f"{header}.{payload}.{b64url(bytes(R.randrange(256) for _ in range(32)))}"


def key_pos():
    hexs = "0123456789abcdef"
    b64 = string.ascii_letters + string.digits + "+/"
    k = R.choice([
        "sk-" + alnum(48), "sk-proj-" + alnum(64, string.ascii_letters + string.digits + "_-"),
        "sk-ant-api03-" + alnum(93, string.ascii_letters + string.digits + "_-") + "AA",
        "AKIA" + alnum(16, string.ascii_uppercase + "234567"), "ASIA" + alnum(16, string.ascii_uppercase + "234567"),
        R.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + alnum(36), "github_pat_" + alnum(22) + "_" + alnum(59),
        f"xox{R.choice('bpas')}-{digits(12)}-{digits(13)}-{alnum(24)}", "AIza" + alnum(35, string.ascii_letters + string.digits + "_-"),
        f"-----BEGIN {R.choice(['RSA ', 'EC ', 'OPENSSH ', 'DSA ', 'ENCRYPTED ', ''])}PRIVATE KEY-----",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----", jwt(), f"Authorization: Bearer {jwt()}",
        f"API_KEY=\"{alnum(32, hexs)}\"", f"export OPENAI_API_KEY={alnum(40)}", f"\"api_key\": \"{alnum(32)}\"",
        f"token: {alnum(40, b64)}", f"client_secret='{alnum(24)}{digits(4)}'", f"password=Pa{alnum(6)}!{digits(2)}",
        f"db_password: \"{alnum(10)}#{digits(3)}\"", f"SECRET_KEY = '{alnum(50, string.ascii_letters + string.digits + '!@#%^&*-_')}'",
        f"https://api.example.com/v1?access_token={alnum(32)}", f"apiKey: \"{alnum(39)}\"",
    ])
    return ctx(k) if not k.startswith("-----") else R.choice([k, f"{k}\\nMIIEpAIBAAKCAQEA", f"key:\n{k}"]).replace("\n", " ")


def key_neg():
    hexs = "0123456789abcdef"
    return R.choice([
        "pip install scikit-learn; import sklearn", f"the task-manager-{R.choice(FIRST)}-service is down",
        "sk-learn-compatible-estimators-for-pipelines", f"AKIA{alnum(6, string.ascii_uppercase)}", "ghp_short",
        "-----BEGIN CERTIFICATE-----", "-----BEGIN PUBLIC KEY-----", "eyJhbGciOi", "password: ********",
        "api_key = os.environ['OPENAI_API_KEY']", "token = tokenizer.encode(text)", "key: value",
        "sort_key=lambda item: item[1]", "\"api_key\": \"YOUR_API_KEY\"", "password = None",
        "the secret: be kind to everyone", f"sha256: {alnum(64, hexs)}", f"commit {alnum(40, hexs)}",
        f"id={alnum(8, hexs)}-{alnum(4, hexs)}-{alnum(4, hexs)}-{alnum(4, hexs)}-{alnum(12, hexs)}",
        "Bearer token required for this endpoint", "monkey=banana", "keyboard: qwerty layout",
        "password: string", f"max_tokens={R.randint(16, 4096)}", f"token_count: {R.randint(1, 99999)}",
        "auth: true", "secret = get_secret('db')", "password=${DB_PASSWORD}", "token=<your-token-here>",
        "Password: reset it from the settings page", f"cache_key: user:{R.randint(1, 999)}",
        "primary_key: id", R.choice(PROSE), f"AIza{alnum(10)}", "xoxb-not-a-token",
        "API_KEY=changeme", f"session-id: {R.randint(10 ** 5, 10 ** 8)}", "key = self.key_for(user)",
        "secret: \"{{ vault.secret }}\"", "passwd: x", "Please set your password: it must be 12 characters.",
        f"AKIAIOSFODNN{R.randint(0, 9)}", "Sk-8 skates on sale", f"v{R.randint(1, 9)}.{R.randint(0, 9)}-beta",
    ])


# ---- IPv4 ------------------------------------------------------------------

def ip():
    return ".".join(str(R.randint(0, 255)) for _ in range(4))


def ipv4_pos():
    a = ip()
    return ctx(R.choice([a, f"{a}:{R.randint(1, 65535)}", f"{a}/{R.randint(8, 32)}", f"host {a} is up",
                         f"ip={a}", f"ssh admin@{a}", f"[{a}]", f"from {a} to {ip()}"]))


def ipv4_neg():
    return R.choice([
        f"version {R.randint(0, 9)}.{R.randint(0, 20)}.{R.randint(0, 99)}",
        f"{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}",
        f"v{R.randint(1, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}",
        f"{R.randint(256, 999)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}",
        f"{R.randint(1, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}",
        f"{R.randint(1990, 2030)}.{R.randint(1, 12):02d}.{R.randint(1, 28):02d}",
        f"pi {R.random() * 10:.6f}", f"Windows 10.0.{R.randint(10000, 22631)}.{R.randint(100, 4000)}",
        f"0{R.randint(1, 9)}.0{R.randint(1, 9)}.{R.randint(10, 99)}.{R.randint(10, 99)}",
        "OID 1.3.6.1.4.1.311", f"section {R.randint(1, 9)}.{R.randint(1, 9)}.{R.randint(1, 9)}.{R.randint(1, 9)}.{R.randint(1, 9)}",
        f"Chrome/{R.randint(100, 130)}.0.{R.randint(1000, 6999)}.{R.randint(10, 200)}", R.choice(PROSE),
        f"version {R.randint(1, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}",
        f"release: {R.randint(1, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}",
        f"{R.randint(1, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}{R.choice('abx')}",
        f"price {R.randint(1, 999)}.{R.randint(10, 99)}", f"{ip()}.{R.randint(0, 255)}",
    ])


DETECTORS = {
    "email": (email_pos, email_neg), "phone": (phone_pos, phone_neg),
    "credit_card": (card_pos, card_neg), "us_ssn": (ssn_pos, ssn_neg), "iban": (iban_pos, iban_neg),
    "secret_key": (key_pos, key_neg), "ipv4": (ipv4_pos, ipv4_neg),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (pos, neg) in DETECTORS.items():
        for suffix, gen in (("pos", pos), ("neg", neg)):
            seen, lines, tries = set(), [], 0
            while len(lines) < N:
                s = gen().replace("\n", " ")
                tries += 1
                if s not in seen or tries > 20 * N:   # fixed hard negatives may repeat
                    seen.add(s)
                    lines.append(s)
            with open(os.path.join(OUT, f"{name}.{suffix}"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
