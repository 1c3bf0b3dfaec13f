--! globals: {"parameters": {"int": 42, "neg": -9223372036854775808, "big": 9223372036854775808, "flt": 2.0, "exp": 1e3, "frac": 0.1, "s": "a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00\u0000z", "arr": [1, "two", true, false], "holes": [1, null, 3], "empty_arr": [], "empty_obj": {}, "nested": {"a": {"b": {"c": [[], {}]}}}, "nul": null}}
--! result: {"int": 42, "neg": -9223372036854775808, "big": 9223372036854775808.0, "flt": 2.0, "exp": 1000.0, "frac": 0.1, "third": 0.3333333333333333, "s": "a\"b\\c/\b\f\n\r\té😀\u0000z", "arr": [1, "two", true, false], "empty_arr": [], "empty_obj": {}, "nested": {"a": {"b": {"c": [[], {}]}}}, "neg0": -0.0, "huge": 1e300, "tiny": 5e-324, "ctrl": "\u0001\u001f", "intlike": 3.0}
local p = parameters
assert(math.type(p.int) == "integer" and p.int == 42)
assert(math.type(p.neg) == "integer" and p.neg == math.mininteger)
assert(math.type(p.big) == "float")
assert(math.type(p.flt) == "float" and p.flt == 2)
assert(math.type(p.exp) == "float")
assert(p.s == "a\"b\\c/\b\f\n\r\t\u{e9}\u{1F600}\0z", p.s)
assert(p.holes[1] == 1 and p.holes[2] == nil and p.holes[3] == 3)
assert(p.nul == nil)
assert(next(p.empty_arr) == nil and next(p.empty_obj) == nil)
return {
  int = p.int, neg = p.neg, big = p.big, flt = p.flt, exp = p.exp, frac = p.frac,
  third = 1 / 3, s = p.s, arr = p.arr, empty_arr = p.empty_arr, empty_obj = p.empty_obj,
  nested = p.nested, neg0 = -0.0, huge = 1e300, tiny = 5e-324, ctrl = "\1\31", intlike = 6 / 2,
}
