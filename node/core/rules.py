"""Decision rules of service items: CEL expressions over declared inputs
(docs/design.md, "Service items and cases").

A rule is data, never Python: a Common Expression Language expression such
as `owner_is_subject && !account_arrears`, evaluated by cel-python (pinned
exactly in pyproject.toml, so every node parses and evaluates alike). This
module is pure: no clock, no I/O.

The subset is chosen so that evaluation is deterministic and bounded by the
rule's size:
- at most RULE_CHARS_MAX characters and RULE_NODES_MAX parse-tree nodes,
  nested at most RULE_DEPTH_MAX deep;
- every name is a declared input (no variables from anywhere else, no
  `now`): a rule naming an unknown input is refused when it is compiled;
- no comprehensions (`all`, `exists`, `map`, `filter`: no loops at all), no
  field selection or message construction, no maps, no floats, no
  timestamps or durations (time zones and clocks); functions only from
  FUNCTIONS and METHODS;
- inputs are booleans, 64-bit integers, strings of at most
  INPUT_CHARS_MAX characters, or null.

So evaluating is one walk over a bounded tree with bounded values. Its
result must be a boolean; anything else (a type error, an overflow, a
division by zero) is a RuleError, which the case driver turns into manual
review: a rule's mistake never approves.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from node.core.canonical import canonical_json

RULE_CHARS_MAX = 2048
RULE_NODES_MAX = 2000
RULE_DEPTH_MAX = 200  # parse-tree levels (each parenthesis costs about 10)
INPUT_CHARS_MAX = 4096
INPUT_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
RULE_HASH_DOMAIN = b"govchain:v1:rule:"

FUNCTIONS = frozenset({"size", "int", "string"})
METHODS = frozenset({"contains", "startsWith", "endsWith", "size"})
_RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
                       "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
                       "void", "while"})
_NODES = frozenset({
    "expr", "conditionalor", "conditionaland", "relation", "relation_lt", "relation_le", "relation_gt",
    "relation_ge", "relation_eq", "relation_ne", "relation_in", "addition", "addition_add", "addition_sub",
    "multiplication", "multiplication_mul", "multiplication_div", "multiplication_mod", "unary", "unary_not",
    "unary_neg", "member", "member_dot_arg", "member_index", "primary", "ident", "ident_arg", "paren_expr",
    "list_lit", "exprlist", "literal"})
_LITERALS = frozenset({"INT_LIT", "UINT_LIT", "STRING_LIT", "MLSTRING_LIT", "BOOL_LIT", "NULL_LIT"})


class RuleError(ValueError):
    """A rule refused at compile time, or an evaluation that gave no boolean."""


@dataclass(frozen=True)
class Rule:
    text: str
    inputs: tuple[str, ...]  # the declared input names, sorted
    _program: object  # celpy Runner

    def __repr__(self) -> str:
        return f"Rule({self.text!r})"


def _environment():
    import celpy  # imported here: only the nodes and tools that use rules load the parser

    return celpy.Environment()


def _check_tree(tree, declared: frozenset[str]) -> None:
    from lark import Token, Tree

    count = 0
    stack = [(tree, 1)]
    while stack:  # iterative: the tree's depth is what is being checked
        node, depth = stack.pop()
        count += 1
        if count > RULE_NODES_MAX:
            raise RuleError(f"rule is too large: more than {RULE_NODES_MAX} parse-tree nodes (RULE_NODES_MAX)")
        if depth > RULE_DEPTH_MAX:
            raise RuleError(f"rule nests too deeply (more than {RULE_DEPTH_MAX} parse-tree levels, RULE_DEPTH_MAX)")
        if isinstance(node, Token):
            continue
        if not isinstance(node, Tree) or node.data not in _NODES:
            what = {"member_dot": "field selection (a.b)", "member_object": "message construction",
                    "map_lit": "a map", "dot_ident": "a qualified name", "dot_ident_arg": "a qualified function"}
            raise RuleError(f"rule uses {what.get(getattr(node, 'data', ''), getattr(node, 'data', node))}, which "
                            "rules may not (docs/design.md, \"Service items and cases\")")
        children = node.children
        if node.data == "ident":
            name = str(children[0])
            if name not in declared:
                raise RuleError(f"rule names {name!r}, which is not a declared input (inputs: "
                                f"{', '.join(sorted(declared)) or 'none'})")
        elif node.data == "ident_arg" and str(children[0]) not in FUNCTIONS:
            raise RuleError(f"rule calls {str(children[0])!r}(); rules may call only "
                            f"{', '.join(sorted(FUNCTIONS))}")
        elif node.data == "member_dot_arg" and str(children[1]) not in METHODS:
            raise RuleError(f"rule calls .{children[1]}(); rules may call only the methods "
                            f"{', '.join(sorted(METHODS))} (no comprehensions: all, exists, map, filter)")
        elif node.data == "literal":
            token = children[0]
            if token.type not in _LITERALS:
                raise RuleError(f"rule has a {token.type.lower().replace('_lit', '')} literal {str(token)[:24]!r}; "
                                "rules use booleans, integers, strings and null")
        stack.extend((child, depth + 1) for child in children if child is not None)


def compile_rule(text: object, declared_inputs: Sequence[str]) -> Rule:
    """The compiled rule; RuleError when it does not parse, is too large,
    uses what rules may not, or names an input not in declared_inputs."""
    from celpy import CELParseError

    if not isinstance(text, str) or not text.strip():
        raise RuleError("rule must be a non-empty CEL expression, e.g. \"owner_is_subject && !account_arrears\"")
    if len(text) > RULE_CHARS_MAX:
        raise RuleError(f"rule is {len(text)} characters, more than the {RULE_CHARS_MAX} allowed (RULE_CHARS_MAX)")
    declared = frozenset(declared_inputs)
    for name in declared:
        if not isinstance(name, str) or not INPUT_NAME_RE.fullmatch(name) or name in _RESERVED:
            raise RuleError(f"input name {str(name)[:70]!r} must be 1-64 of a-z, 0-9, _ starting with a letter, "
                            "and not a CEL reserved word")
    env = _environment()
    try:
        tree = env.compile(text)
    except CELParseError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise RuleError(f"rule does not parse as CEL: {first[:200]}") from None
    except RecursionError:
        raise RuleError(f"rule nests too deeply (RULE_DEPTH_MAX is {RULE_DEPTH_MAX})") from None
    _check_tree(tree, declared)
    return Rule(text, tuple(sorted(declared)), env.program(tree))


def _cel_value(name: str, value: object):
    from celpy import celtypes

    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise RuleError(f"input {name!r} is outside the signed 64-bit range")
        return celtypes.IntType(value)
    if isinstance(value, str):
        if len(value) > INPUT_CHARS_MAX:
            raise RuleError(f"input {name!r} is longer than {INPUT_CHARS_MAX} characters (INPUT_CHARS_MAX)")
        return celtypes.StringType(value)
    raise RuleError(f"input {name!r} is a {type(value).__name__}; inputs are booleans, integers, strings or null")


def evaluate(rule: Rule, inputs: Mapping[str, object]) -> bool:
    """The rule's boolean over `inputs` (exactly its declared names).
    RuleError for a missing or extra input, a value of another type, or an
    evaluation that does not give a boolean (type error, overflow, division
    by zero): never an uncaught exception from the library."""
    from celpy import CELEvalError, celtypes

    if missing := sorted(set(rule.inputs) - set(inputs)):
        raise RuleError(f"no value for input{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if extra := sorted(set(inputs) - set(rule.inputs)):
        raise RuleError(f"{', '.join(extra)} {'are' if len(extra) > 1 else 'is'} not an input of the rule")
    activation = {name: _cel_value(name, inputs[name]) for name in rule.inputs}
    try:
        result = rule._program.evaluate(activation)
    except CELEvalError as exc:
        result = exc
    except (TypeError, ValueError, ArithmeticError, KeyError, IndexError, RecursionError) as exc:
        raise RuleError(f"rule evaluation failed: {type(exc).__name__}") from None
    if isinstance(result, CELEvalError):
        reason = result.args[0] if result.args else "error"
        raise RuleError(f"rule evaluation failed: {str(reason)[:160]}")
    if not isinstance(result, celtypes.BoolType):
        raise RuleError(f"rule gives a {type(result).__name__.replace('Type', '').lower()}, not a boolean")
    return bool(result)


def rule_hash(document: Mapping) -> str:
    """Hex SHA-256 of a rule document ({"rule", "inputs", "auto_approve"} as
    the item contract stores it), over its canonical JSON: the hash a case
    pins when it opens and its decision cites."""
    return hashlib.sha256(RULE_HASH_DOMAIN + canonical_json(document)).hexdigest()


# ---- from verified answers to an outcome ------------------------------------------

APPROVED, REFUSED, MANUAL = "approved", "refused", "manual"
OUTCOMES = (APPROVED, REFUSED, MANUAL)


def input_value(spec: Mapping, answer: Mapping) -> tuple[bool, object]:
    """(known, value) of one input from a verified answer: a predicate input
    is the answer's `holds`, a field input the field's value; no record
    gives the input's `if_missing` when it declares one, else unknown."""
    if not answer.get("found"):
        return ("if_missing" in spec), spec.get("if_missing")
    if "predicate" in spec:
        return True, answer.get("holds")
    return True, (answer.get("fields") or {}).get(spec["field"])


def decide(document: Mapping, answers: Mapping[str, Mapping | None]) -> tuple[str, str]:
    """(outcome, reason) of a rule document over the verified answers, one
    per input (None: the query was refused). The same function runs in the
    case driver and in `govchain case rerun`, so a re-run is the decision."""
    specs = {spec["name"]: spec for spec in document["inputs"]}
    values = {}
    for name in sorted(specs):
        answer = answers.get(name)
        if answer is None:
            return MANUAL, f"no verified answer for input {name}"
        known, value = input_value(specs[name], answer)
        if not known:
            return MANUAL, f"no record for input {name}"
        values[name] = value
    try:
        holds = evaluate(compile_rule(document["rule"], list(specs)), values)
    except RuleError as exc:
        return MANUAL, str(exc)[:200]
    if not document["auto_approve"]:
        return MANUAL, f"the item is decided by an officer (the rule {'holds' if holds else 'does not hold'})"
    return (APPROVED, "the rule holds") if holds else (REFUSED, "the rule does not hold")
