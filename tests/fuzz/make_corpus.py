#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/).

Run it from anywhere after changing a target's input format; the files it writes are
committed. Seeds are small and meaningful: valid bodies, the edge values of every wire type
and the classic malformations. Names are <nnn>-<what>, so a failing replay names its seed.
The input formats are described at the top of each target.
"""
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# FUZZ_SERVICES order in fuzz_services.h.
SVC = {name: i for i, name in enumerate([
    "fz_ints", "fz_cints", "fz_reals", "fz_text", "fz_struct", "fz_none", "fz_bytes",
    "fz_json", "fz_ref", "fz_bool", "fz_float", "fz_u8", "fz_i32", "fz_u64", "fz_inner_res"])}

ADMIN = "ad" * 32
CALL = "ca" * 32
BUILD_A = "a" * 64


def b(s):
    return s.encode("utf-8") if isinstance(s, str) else s


class Corpus:
    def __init__(self, target):
        self.dir = os.path.join(HERE, "corpus", target)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.n = 0

    def add(self, what, data):
        path = os.path.join(self.dir, "%03d-%s" % (self.n, what))
        with open(path, "wb") as f:
            f.write(data)
        self.n += 1


def call_args():
    c = Corpus("fuzz_call_args")

    def arg(svc, what, body):
        c.add("%s-%s" % (svc, what), bytes([SVC[svc]]) + b(body))

    arg("fz_ints", "extremes",
        '{"a":-128,"b":32767,"c":-2147483648,"d":-9223372036854775808,"e":255,"f":65535,'
        '"g":4294967295,"h":"18446744073709551615"}')
    arg("fz_ints", "strings",
        '{"a":"-1","b":"0","c":"2147483647","d":"9223372036854775807","e":"0","f":"1",'
        '"g":"4294967295","h":18446744073}')
    arg("fz_ints", "int8-over", '{"a":128,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0}')
    arg("fz_ints", "uint64-over",
        '{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":"18446744073709551616"}')
    arg("fz_ints", "int64-over",
        '{"a":0,"b":0,"c":0,"d":"9223372036854775808","e":0,"f":0,"g":0,"h":0}')
    arg("fz_ints", "real-for-int", '{"a":2.0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0}')
    arg("fz_ints", "negative-unsigned", '{"a":0,"b":0,"c":0,"d":0,"e":-1,"f":0,"g":0,"h":0}')
    arg("fz_ints", "missing", '{"a":1}')
    arg("fz_ints", "extra", '{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"z":1}')
    arg("fz_ints", "duplicate-key", '{"a":1,"a":2}')
    arg("fz_ints", "not-object", '[1,2,3,4,5,6,7,8]')
    arg("fz_cints", "all",
        '{"ch":65,"sh":-32768,"u":4294967295,"l":-1,"ll":"-9223372036854775808",'
        '"ull":"18446744073709551615","sc":-128,"uc":255}')
    arg("fz_reals", "specials", '{"f":"Infinity","d":"NaN","b":true}')
    arg("fz_reals", "float-max", '{"f":3.4028234663852886e38,"d":-1.7976931348623157e308,"b":false}')
    arg("fz_reals", "float-over", '{"f":3.5e38,"d":0,"b":false}')
    arg("fz_reals", "tiny", '{"f":1e-46,"d":5e-324,"b":false}')
    arg("fz_reals", "negzero", '{"f":-0.0,"d":-0.0,"b":true}')
    arg("fz_reals", "bad-special", '{"f":"nan","d":"inf","b":true}')
    arg("fz_reals", "int-for-bool", '{"f":1,"d":2,"b":1}')
    arg("fz_text", "valid",
        '{"c":"h\\u00e9llo \\ud83d\\ude00","s":null,"b":"AAEC","r":"ms://objects/ns/c/1",'
        '"j":{"x":[1,2.5,{"y":null}],"t":true}}')
    arg("fz_text", "raw-utf8", b'{"c":"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80","s":"","b":"",'
        b'"r":null,"j":null}')
    arg("fz_text", "nul-escape", '{"c":"a\\u0000b","s":"x","b":"","r":null,"j":0}')
    arg("fz_text", "lone-surrogate", '{"c":"\\ud800","s":"x","b":"","r":null,"j":0}')
    arg("fz_text", "invalid-utf8", b'{"c":"\xff\xfe","s":"x","b":"","r":null,"j":0}')
    arg("fz_text", "overlong", b'{"c":"\xc0\x80","s":"x","b":"","r":null,"j":0}')
    arg("fz_text", "bad-ref", '{"c":"x","s":"x","b":"","r":"http://example/","j":0}')
    # A key cut at 64 bytes in the middle of a character (found by fuzzing: the message
    # was not UTF-8, so the instance's JSON error body could not be built).
    arg("fz_text", "long-key-utf8",
        '{"x' + "\u00e9" * 40 + '":1,"c":"x","s":"x","b":"","r":null,"j":0}')
    arg("fz_struct", "valid",
        '{"o":{"in":{"i8":1,"u64":"18446744073709551615","s":"x","b":"/w=="},"d":1.5,'
        '"j":{"k":[]},"r":"ms://o/1","ok":true,"f":0.5},'
        '"i":{"i8":-128,"u64":0,"s":null,"b":""}}')
    arg("fz_struct", "missing-field",
        '{"o":{"in":{"i8":1,"u64":0,"s":"x"},"d":1,"j":null,"r":null,"ok":true,"f":0},'
        '"i":{"i8":0,"u64":0,"s":null,"b":""}}')
    arg("fz_struct", "extra-field",
        '{"o":{"in":{"i8":1,"u64":0,"s":"x","b":"","zz":0},"d":1,"j":null,"r":null,'
        '"ok":true,"f":0},"i":{"i8":0,"u64":0,"s":null,"b":""}}')
    arg("fz_none", "empty", '{}')
    arg("fz_none", "extra", '{"x":1}')
    arg("fz_none", "null", 'null')
    arg("fz_bytes", "all-ones", '{"b":"////"}')
    arg("fz_bytes", "pad2", '{"b":"AA=="}')
    arg("fz_bytes", "bad-pad", '{"b":"A==="}')
    arg("fz_bytes", "unused-bits", '{"b":"AB=="}')
    arg("fz_bytes", "short", '{"b":"AAE"}')
    arg("fz_bytes", "url-alphabet", '{"b":"-_-_"}')
    arg("fz_json", "depth-63", '{"any":' + "[" * 62 + "]" * 62 + "}")
    arg("fz_json", "depth-65", '{"any":' + "[" * 64 + "]" * 64 + "}")
    arg("fz_json", "nested-1000", '{"any":' + "[" * 1000 + "]" * 1000 + "}")
    arg("fz_json", "brackets-in-strings", '{"any":["[[[[{{{{","\\"[",{"]":"}"}]}')
    arg("fz_json", "numbers", '{"any":[1e308,-0,0.1,123456789012345678901234567890]}')
    arg("fz_ref", "valid", '{"self":"ms://objects/a/b/c","n":1}')
    arg("fz_ref", "prefix-only", '{"self":"ms:/","n":1}')
    arg("fz_bool", "true", '{"b":true}')
    arg("fz_bool", "string", '{"b":"true"}')
    arg("fz_float", "precision", '{"x":16777217}')
    arg("fz_float", "nan", '{"x":"NaN"}')
    arg("fz_u8", "string-max", '{"x":"255"}')
    arg("fz_u8", "string-over", '{"x":"256"}')
    arg("fz_u8", "minus-zero", '{"x":"-0"}')
    arg("fz_i32", "over", '{"x":2147483648}')
    arg("fz_i32", "exponent", '{"x":"1e3"}')
    arg("fz_i32", "leading-zeros", '{"x":"-0002147483648"}')
    arg("fz_u64", "huge-string", '{"x":"99999999999999999999999999"}')
    arg("fz_u64", "huge-not-number", '{"x":"99999999999999999999999999x"}')
    arg("fz_u64", "plus-sign", '{"x":"+1"}')
    arg("fz_inner_res", "valid", '{"s":"ok"}')
    arg("fz_ints", "truncated", '{"a":')
    arg("fz_ints", "trailing", '{} x')
    arg("fz_ints", "bom", b'\xef\xbb\xbf{}')
    arg("fz_ints", "nul-after", b'{}\x00')
    arg("fz_ints", "empty", '')
    arg("fz_json", "deep-10000", "[" * 10000)


def call_result():
    c = Corpus("fuzz_call_result")

    def res(svc, status, what, body):
        c.add("%s-%d-%s" % (svc, status, what),
              bytes([SVC[svc], status >> 8, status & 0xFF]) + b(body))

    res("fz_ints", 200, "int", '{"result":5}')
    res("fz_ints", 200, "min", '{"result":-9223372036854775808}')
    res("fz_u64", 200, "max", '{"result":"18446744073709551615"}')
    res("fz_u64", 200, "over", '{"result":"18446744073709551616"}')
    res("fz_u8", 200, "over", '{"result":256}')
    res("fz_none", 200, "null", '{"result":null}')
    res("fz_none", 200, "not-null", '{"result":0}')
    res("fz_struct", 200, "struct",
        '{"result":{"in":{"i8":1,"u64":2,"s":"x","b":"AAEC"},"d":"-Infinity","j":[1],'
        '"r":"ms://x","ok":false,"f":1.5}}')
    res("fz_inner_res", 200, "missing-field", '{"result":{"i8":1,"u64":2,"s":"x"}}')
    res("fz_bytes", 200, "bytes", '{"result":"AAECAwQF"}')
    res("fz_bytes", 200, "bad-b64", '{"result":"AAE="}')
    res("fz_json", 200, "json", '{"result":[1,{"a":"b"},null,true]}')
    res("fz_ref", 200, "ref", '{"result":"ms://objects/x/y/z"}')
    res("fz_bool", 200, "bool", '{"result":true}')
    res("fz_float", 200, "too-big", '{"result":1e39}')
    res("fz_float", 200, "nan", '{"result":"NaN"}')
    res("fz_reals", 200, "real", '{"result":0.30000000000000004}')
    res("fz_text", 200, "string", '{"result":"h\\u00e9"}')
    res("fz_text", 200, "nul", '{"result":"a\\u0000"}')
    res("fz_ints", 200, "extra-key", '{"result":5,"extra":1}')
    res("fz_ints", 200, "missing", '{}')
    res("fz_ints", 200, "array", '[5]')
    res("fz_ints", 200, "not-json", 'not json')
    res("fz_ints", 200, "empty", '')
    res("fz_ints", 200, "deep", '{"result":' + "[" * 70 + "]" * 70 + "}")
    res("fz_ints", 400, "badargs",
        '{"error":{"code":"MS_EBADARGS","message":"add: argument \'b\': expected an integer"}}')
    res("fz_ints", 500, "app",
        '{"error":{"code":"MS_EAPP","message":"boom","app_code":7}}')
    res("fz_ints", 500, "app-huge-code",
        '{"error":{"code":"MS_EAPP","message":"boom","app_code":9223372036854775807}}')
    res("fz_ints", 412, "code-only", '{"error":{"code":"MS_ESIGNATURE"}}')
    res("fz_ints", 421, "wrong-instance",
        '{"error":{"code":"MS_EWRONGINSTANCE","message":"this is i-2.1, not i-1.1"}}')
    res("fz_ints", 429, "empty", '')
    res("fz_ints", 503, "draining", '{"error":{"code":"MS_EDRAINING","message":"draining"}}')
    res("fz_ints", 404, "text", 'Not Found')
    res("fz_ints", 502, "html", '<html><body>Bad Gateway</body></html>')
    res("fz_ints", 418, "unknown-code", '{"error":{"code":"MS_EBOGUS","message":5}}')
    res("fz_ints", 400, "code-not-string", '{"error":{"code":5,"message":["x"]}}')
    res("fz_ints", 400, "error-string", '{"error":"bad"}')
    res("fz_ints", 400, "invalid-utf8", b'{"error":{"code":"MS_EBADARGS","message":"\xff"}}')
    res("fz_ints", 0, "no-status", '')
    res("fz_ints", 599, "long-text", "x" * 600)
    # Found by fuzzing: jansson's message quoted the input cut mid-character.
    res("fz_text", 200, "bad-escape-then-utf8", b'{"result":"h\\u00e\xc7\x81"}')


def msd_api():
    c = Corpus("fuzz_msd_api")

    def k(kind, sel, what, body):
        c.add("k%d-%s" % (kind, what), bytes([kind, sel]) + b(body))

    def raw(what, text):
        c.add("k4-%s" % what, bytes([4]) + b(text))

    # 0: POST /v1/deployments (sel bit 0: admin token, else the call token)
    k(0, 1, "deploy", '{"path":"/abs/path/app","argv":["--flag","x"]}')
    k(0, 1, "relative", '{"path":"relative/app"}')
    k(0, 1, "empty-path", '{"path":""}')
    k(0, 1, "argv-string", '{"path":"/x","argv":"s"}')
    k(0, 1, "argv-number", '{"path":"/x","argv":[1]}')
    k(0, 1, "argv-nul", '{"path":"/x","argv":["a\\u0000b"]}')
    k(0, 1, "path-nul", '{"path":"/bin/sh\\u0000x"}')
    k(0, 1, "long-utf8-path", '{"path":"/' + "\u00e9" * 600 + '"}')
    k(0, 1, "array", '[1,2]')
    k(0, 1, "bad-utf8", b'{"path":"/tmp/\xff"}')
    k(0, 1, "deep", '{"x":' + "[" * 70 + "]" * 70 + "}")
    k(0, 0, "call-token", '{"path":"/abs/app"}')
    # 1: PUT /v1/services/{name}/scale (name: sel % 6 of add, slow, nope, ns.add, a..b, x%2Fy)
    k(1, 0, "add", '{"instances":3}')
    k(1, 0, "add-build", '{"instances":2,"build":"' + BUILD_A + '"}')
    k(1, 0, "add-other-build", '{"instances":2,"build":"' + "b" * 64 + '"}')
    k(1, 0, "unknown-build", '{"instances":2,"build":"' + "c" * 64 + '"}')
    k(1, 0, "zero", '{"instances":0}')
    k(1, 0, "negative", '{"instances":-1}')
    k(1, 0, "over-max", '{"instances":9}')
    k(1, 0, "over-limit", '{"instances":1025}')
    k(1, 0, "string", '{"instances":"3"}')
    k(1, 0, "real", '{"instances":3.0}')
    k(1, 0, "bad-build", '{"instances":1,"build":"zz"}')
    k(1, 1, "slow", '{"instances":4}')
    k(1, 2, "unknown", '{"instances":1}')
    k(1, 5, "encoded-slash", '{"instances":1}')
    k(1, 0x80, "call-token", '{"instances":1}')
    # 2: POST /v1/services/{name}/failures
    k(2, 0, "report", '{"instance":"i-1","epoch":1,"reason":"connect refused"}')
    k(2, 1, "suspect", '{"instance":"i-3"}')
    k(2, 0, "traversal", '{"instance":"../x"}')
    k(2, 0, "neg-epoch", '{"instance":"i-1","epoch":-1}')
    k(2, 0, "string-epoch", '{"instance":"i-1","epoch":"1"}')
    k(2, 2, "unknown-service", '{"instance":"i-1"}')
    k(2, 0x80, "no-token", '{"instance":"i-1"}')
    # 3: POST /v1/instances/{id}/heartbeat (id: sel % 8; token: (sel >> 3) % 4 of
    # instance, admin, call, none)
    hb = ('{"epoch":1,"pid":1234,"addr":"127.0.0.1:40123","service":"add",'
          '"signature":"0123456789abcdef","busy":0.25,"cpu":0.1,"inflight":1,"queued":0,'
          '"calls":1234,"draining":false}')
    k(3, 0, "ready", hb)
    k(3, 1, "starting-registers", hb)
    k(3, 1, "v6-addr", '{"epoch":1,"addr":"[::1]:40000"}')
    k(3, 0, "old-epoch", '{"epoch":2}')
    k(3, 0, "bad-addr", '{"epoch":1,"addr":"nohost"}')
    k(3, 0, "port-zero", '{"epoch":1,"addr":"127.0.0.1:0"}')
    k(3, 0, "busy-huge", '{"epoch":1,"busy":1e7}')
    k(3, 0, "busy-negative", '{"epoch":1,"busy":-0.5}')
    k(3, 0, "busy-string", '{"epoch":1,"busy":"x"}')
    k(3, 0, "pid-negative", '{"epoch":1,"pid":-1}')
    k(3, 0, "no-epoch", '{"pid":1}')
    k(3, 0, "draining", '{"epoch":1,"draining":true}')
    k(3, 6, "unknown-instance", '{"epoch":1}')
    k(3, 7, "traversal-id", '{"epoch":1}')
    k(3, 8, "admin-token", '{"epoch":1}')
    k(3, 16, "call-token", '{"epoch":1}')
    k(3, 24, "no-token", '{"epoch":1}')
    # 4: raw requests
    raw("health", "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    raw("services", "GET /v1/services HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n" % CALL)
    raw("locate", "GET /v1/services/add?build=%s&sig=0123456789abcdef HTTP/1.1\r\n"
        "Authorization: Bearer %s\r\nMs-Deadline-Ms: 100\r\n\r\n" % (BUILD_A, CALL))
    raw("locate-no-ready", "GET /v1/services/add?sig=00000000ffffffff HTTP/1.1\r\n"
        "Authorization: Bearer %s\r\n\r\n" % CALL)
    raw("chunked", "PUT /v1/services/add/scale HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"ins\r\nb\r\ntances\":2}\r\n0\r\n\r\n" % ADMIN)
    raw("chunked-garbage", "PUT /v1/services/add/scale HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
        "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n" % ADMIN)
    raw("huge-length", "POST /v1/deployments HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
        "Content-Length: 1073741824\r\n\r\n{" % ADMIN)
    raw("short-body", "POST /v1/deployments HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
        "Content-Length: 100\r\n\r\n{\"path\":" % ADMIN)
    raw("negative-length", "POST /v1/deployments HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
    raw("events", "GET /v1/events?since=0&limit=5 HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n"
        % CALL)
    raw("delete", "DELETE /v1/services/add HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n" % ADMIN)
    raw("drain", "POST /v1/instances/i-1/drain HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
        "Content-Length: 0\r\n\r\n" % ADMIN)
    raw("metrics", "GET /metrics HTTP/1.1\r\n\r\n")
    raw("dashboard", "GET / HTTP/1.1\r\n\r\n")
    raw("deployments", "GET /v1/deployments HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n" % CALL)
    raw("unknown-method", "BREW /v1/health HTTP/1.1\r\n\r\n")
    raw("traversal", "GET /v1/services/..%%2F..%%2Fetc HTTP/1.1\r\nAuthorization: Bearer "
        "%s\r\n\r\n" % CALL)
    raw("http10", "GET /v1/health HTTP/1.0\r\n\r\n")
    raw("http2", "GET /v1/health HTTP/2.0\r\n\r\n")
    raw("no-colon", "GET /v1/health HTTP/1.1\r\nBroken header\r\n\r\n")
    raw("basic-auth", "GET /v1/services HTTP/1.1\r\nAuthorization: Basic YTpi\r\n\r\n")
    raw("bearer-empty", "GET /v1/services HTTP/1.1\r\nAuthorization: Bearer\r\n\r\n")
    raw("bearer-spaces", "GET /v1/services HTTP/1.1\r\nAuthorization: bearer    %s  \r\n\r\n"
        % CALL)
    raw("bearer-prefix", "GET /v1/services HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n"
        % CALL[:40])
    raw("truncated-line", "GET /v1/hea")
    raw("nul-in-path", b"GET /v1/he\x00alth HTTP/1.1\r\n\r\n")
    # 5: describe documents
    describe = ('{"ms":1,"services":[{"name":"add","signature":"0123456789abcdef",'
                '"sigtext":"add(a:i64,b:i64)->i64","options":{"idempotent":true,'
                '"concurrency":4,"min_instances":2,"max_instances":1,"scale_up_at":0.5,'
                '"scale_down_at":0.3,"timeout_ms":3000,"lb":"client"}}]}')
    c.add("k5-describe-raw", bytes([5]) + b(describe))
    c.add("k5-version-2", bytes([5]) + b('{"ms":2,"services":[]}'))
    c.add("k5-no-services", bytes([5]) + b('{"ms":1,"services":[]}'))
    c.add("k5-duplicate", bytes([5]) + b(
        '{"ms":1,"services":[{"name":"a","signature":"0123456789abcdef"},'
        '{"name":"a","signature":"0123456789abcdef"}]}'))
    c.add("k5-bad-sig", bytes([5]) + b('{"ms":1,"services":[{"name":"a","signature":"xyz"}]}'))
    c.add("k5-bad-name", bytes([5]) + b(
        '{"ms":1,"services":[{"name":"a b","signature":"0123456789abcdef"}]}'))
    c.add("k5-options-array", bytes([5]) + b(
        '{"ms":1,"services":[{"name":"a","signature":"0123456789abcdef","options":[]}]}'))
    c.add("k5-options-extreme", bytes([5]) + b(
        '{"ms":1,"services":[{"name":"a","signature":"0123456789abcdef","options":'
        '{"concurrency":-5,"min_instances":99999999999,"max_instances":0,'
        '"scale_up_at":1e300,"scale_down_at":-1,"timeout_ms":0,"lb":"bogus"}}]}'))
    # 6: METHOD PATH without a body (method: sel % 6 of GET POST PUT DELETE HEAD PATCH;
    # bit 7: the call token instead of the admin token)
    k(6, 0, "events", "/v1/events?since=1&limit=2")
    k(6, 0, "events-bad", "/v1/events?since=-1&limit=0")
    k(6, 0x80, "locate", "/v1/services/add?build=" + BUILD_A)
    k(6, 0x80, "locate-slow", "/v1/services/slow")
    k(6, 0x80, "locate-bad-sig", "/v1/services/add?sig=12")
    k(6, 3, "delete", "/v1/services/add")
    k(6, 1, "drain", "/v1/instances/i-1/drain")
    k(6, 0, "long-name", "/v1/services/" + "x" * 200)
    k(6, 0, "percent", "/v1/services/%ff%00")
    k(6, 4, "head-root", "/")
    # The object store (docs/objects.md), as raw requests.
    def obj(what, method, path, body="", extra=""):
        raw("obj-" + what, "%s %s HTTP/1.1\r\nAuthorization: Bearer %s\r\n%sContent-Length: %d\r\n"
            "\r\n%s" % (method, path, CALL, extra, len(b(body)), body))
    obj("create", "POST", "/v1/objects/ns/c", '{"a":1,"b":{"c":[1,2]}}')
    obj("put", "PUT", "/v1/objects/ns/c/x", '{"a":1}')
    obj("put-if-match", "PUT", "/v1/objects/ns/c/x", '{"a":2}', 'If-Match: "1", W/"2"\r\n')
    obj("put-if-match-star", "PUT", "/v1/objects/ns/c/x", '{"a":3}', "If-Match: *\r\n")
    obj("put-if-match-junk", "PUT", "/v1/objects/ns/c/x", '{}', 'If-Match: "1\r\n')
    obj("patch", "PATCH", "/v1/objects/ns/c/x", '{"a":null,"d":{"e":1}}')
    obj("get", "GET", "/v1/objects/ns/c/x")
    obj("list", "GET", "/v1/objects/ns/c?after=a&limit=2")
    obj("list-bad", "GET", "/v1/objects/ns/c?after=..&limit=99999")
    obj("delete", "DELETE", "/v1/objects/ns/c/x", "", 'If-Match: "7"\r\n')
    obj("array", "POST", "/v1/objects/ns/c", "[1]")
    obj("bad-name", "GET", "/v1/objects/n%20s/c/x")
    obj("too-deep", "GET", "/v1/objects/a/b/c/d")
    obj("txn", "POST", "/v1/txn",
        '{"ops":[{"op":"check","ref":"ms://objects/ns/c/x","if_match":"\\"1\\""},'
        '{"op":"create","ref":"ms://objects/ns/c","value":{}},'
        '{"op":"patch","ref":"ms://objects/ns/c/x","value":{"n":1}},'
        '{"op":"delete","ref":"ms://objects/ns/c/y","if_match":"*"}]}',
        "Ms-Request-Id: fz-1\r\nMs-Acked-Below: 1\r\n")
    obj("txn-bad", "POST", "/v1/txn", '{"ops":[{"op":"put","ref":"ms://objects/ns/c"}]}')


def http_parse():
    c = Corpus("fuzz_http_parse")

    def sel(maxh=3, step=1, keep=7):
        # maxh: 64, 256, 1024, 8192; step: 1..8 bytes; keep: 0, 1, 5, 16, 100, 1024, 65536, all
        return bytes([maxh | (step - 1) << 2 | keep << 5])

    def h(what, text, **kw):
        c.add(what, sel(**kw) + b(text))

    h("get", "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    h("get-query", "GET /v1/services/add?build=%61b+c&sig=0123 HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Bearer tok\r\nMs-Deadline-Ms: 2500\r\n\r\n")
    h("post-length", "POST /v1/call/add HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 13\r\n\r\n{\"a\":2,\"b\":3}")
    h("post-continue", "POST /v1/call/add HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      "Content-Length: 2000000\r\n\r\n")
    h("chunked", "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;name=v\r\n world\r\n0\r\nTrailer: x\r\n\r\nGET / HTTP/1.1\r\n\r\n",
      step=3, keep=3)
    h("chunked-lf", "POST /e HTTP/1.1\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n", step=1)
    h("chunked-over-limit", "POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "40\r\n" + "x" * 64 + "\r\n0\r\n\r\n", step=8, keep=4)
    h("chunked-garbage", "POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n")
    h("chunk-size-overflow", "POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "ffffffffffffffffffff\r\nx\r\n")
    h("pipelined", "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n")
    h("http10-keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    h("leading-crlf", "\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    h("absolute-form", "GET http://localhost:4999/v1/health?x HTTP/1.1\r\n\r\n")
    h("options-star", "OPTIONS * HTTP/1.1\r\n\r\n")
    h("obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n")
    h("space-before-colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n")
    h("nul-in-value", b"GET / HTTP/1.1\r\nAuthorization: Bearer a\0b\r\n\r\n")
    h("nul-in-target", b"GET /a\0b HTTP/1.1\r\n\r\n")
    h("bare-cr", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n")
    h("length-and-chunked", "POST / HTTP/1.1\r\nContent-Length: 7\r\n"
      "Transfer-Encoding: chunked\r\n\r\n")
    h("conflicting-lengths", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n")
    h("length-overflow", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n")
    h("gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
    h("expect-other", "POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n")
    h("version-9.9", "GET / HTTP/9.9\r\n\r\n")
    h("no-version", "GET /v1/health\r\n\r\n")
    h("long-line-414", "GET /" + "x" * 300 + " HTTP/1.1\r\n\r\n", maxh=1)
    h("long-head-431", "GET / HTTP/1.1\r\nX-Big: " + "a" * 300 + "\r\n\r\n", maxh=1)
    h("many-fields", "GET / HTTP/1.1\r\n" + "X-Many: v\r\n" * 70 + "\r\n")
    h("percent", "GET /v1/services/%ff%fe%00%zz%4?q=%00&a+b=c+d HTTP/1.1\r\n\r\n")


def http_response():
    c = Corpus("fuzz_http_response")

    def sel(maxh=3, step=1, head=0):
        # maxh: 16, 64, 256, 65536; step: 1..8 bytes per read; head: the request was a HEAD
        return bytes([maxh | (step - 1) << 2 | head << 5])

    def r(what, text, **kw):
        c.add(what, sel(**kw) + b(text))

    r("json-200", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
      "\r\n{\"a\":2,\"b\":3}")
    r("error-429", "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 60\r\n"
      "\r\n{\"error\":{\"code\":\"MS_EOVERLOADED\",\"message\":\"queue full\"}}xxxx", step=3)
    r("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;name=v\r\n world\r\n0\r\nTrailer: x\r\n\r\n", step=2)
    r("chunked-lf", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n", step=1)
    r("chunked-and-length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
      "Transfer-Encoding: gzip, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")
    r("chunked-garbage", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n")
    r("chunked-truncated", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc")
    r("chunk-size-overflow", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "ffffffffffffffffffff\r\nx\r\n")
    r("continue-then-201", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
      "Content-Length: 2\r\n\r\nok", step=5)
    r("switching-101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nrest")
    r("http10-close", "HTTP/1.0 200 OK\r\n\r\nuntil the close")
    r("http10-keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n"
      "\r\n")
    r("connection-lists", "HTTP/1.1 200 OK\r\nConnection: te, close;x, keep-alive close\r\n"
      "Transfer-Encoding: chunked ;q\r\n\r\n")
    r("no-content-204", "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n")
    r("head-request", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", head=1)
    r("length-short", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    r("length-pipelined", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n\r\n")
    r("length-bad", "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n")
    r("length-19-digits", "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000000\r\n\r\n")
    r("retry-after-date", "HTTP/1.1 503 x\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
      "Retry-After: 86399\r\n\r\n")
    r("no-colon-lines", "HTTP/1.1 200 OK\r\nnonsense\r\n : \r\nX:\r\n\r\n")
    r("status-only", "HTTP/1.1 200\n\n")
    r("http2", "HTTP/2 200 OK\r\n\r\n")
    r("not-http", "SSH-2.0-OpenSSH_9.2\r\n\r\n")
    r("bad-status", "HTTP/1.1 099 x\r\n\r\n")
    r("too-long-16", "HTTP/1.1 200 OK\r\nX: y\r\n\r\n", maxh=0)
    r("too-long-64", "HTTP/1.1 200 OK\r\nX-Big: " + "a" * 80 + "\r\n\r\n", maxh=1)
    r("etag-location", "HTTP/1.1 201 Created\r\nETag:  \"17\" \r\nLocation: /v1/objects/a/b/"
      + "c" * 40 + "\r\netag: \"18\"\r\nContent-Length: 2\r\n\r\n{}")


TARGETS = {
    "fuzz_call_args": lambda: call_args(),
    "fuzz_call_result": lambda: call_result(),
    "fuzz_msd_api": lambda: msd_api(),
    "fuzz_http_parse": lambda: http_parse(),
    "fuzz_http_response": lambda: http_response(),
}


def main():
    # Every target, or only those named (a corpus is rewritten as a whole: files added by
    # hand, such as corpus/fuzz_msd_api/regress-*, must be added again after a full run).
    names = sys.argv[1:] or list(TARGETS)
    for name in names:
        if name not in TARGETS:
            print("make_corpus.py: unknown target %s" % name, file=sys.stderr)
            return 2
        TARGETS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
