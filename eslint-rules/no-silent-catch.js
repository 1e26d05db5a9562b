// A local ESLint rule: a promise handler that drops its error must say why that is safe.
//
// Issue 18: "Silent `.catch(() => {})` ... fail lint unless they carry a comment saying why
// dropping the error is safe." No stock rule does this: `no-empty-function` flags every empty
// function (noop callbacks included) and misses `.catch(() => undefined)`, which drops the
// error just as silently. Empty `catch {}` blocks are `no-empty`'s job (allowEmptyCatch: false).

/** A handler drops the error when it never uses it and its result is a plain value. */
function isSilentHandler(fn) {
  if (fn.type !== 'ArrowFunctionExpression' && fn.type !== 'FunctionExpression') return false;
  if (fn.async) return false;
  if (fn.body.type === 'BlockStatement') return fn.body.body.length === 0;
  if (!isPlainValue(fn.body)) return false;
  // `(e) => e` turns the rejection into a value the caller looks at: that is handling it.
  const names = new Set(fn.params.filter((p) => p.type === 'Identifier').map((p) => p.name));
  return !identifiersIn(fn.body).some((n) => names.has(n));
}

function identifiersIn(node) {
  if (!node) return [];
  if (node.type === 'Identifier') return [node.name];
  if (node.type === 'ArrayExpression') return node.elements.flatMap(identifiersIn);
  if (node.type === 'UnaryExpression') return identifiersIn(node.argument);
  if (node.type === 'TSAsExpression' || node.type === 'TSSatisfiesExpression') return identifiersIn(node.expression);
  return [];
}

/** A value that runs no code: what a handler returns when it only swallows the error. */
function isPlainValue(node) {
  switch (node.type) {
    case 'Literal':
    case 'Identifier':
    case 'TemplateLiteral':
      return node.type !== 'TemplateLiteral' || node.expressions.length === 0;
    case 'UnaryExpression':
      return node.operator === 'void' || isPlainValue(node.argument);
    case 'ArrayExpression':
      return node.elements.every((e) => e === null || isPlainValue(e));
    case 'ObjectExpression':
      return node.properties.length === 0;
    case 'TSAsExpression':
    case 'TSSatisfiesExpression':
      return isPlainValue(node.expression);
    default:
      return false;
  }
}

/** The handler that receives a rejection in `p.catch(h)` or `p.then(ok, h)`, if any. */
function rejectionHandler(call) {
  const callee = call.callee;
  if (callee.type !== 'MemberExpression' || callee.computed || callee.property.type !== 'Identifier') return undefined;
  if (callee.property.name === 'catch') return call.arguments[0];
  if (callee.property.name === 'then') return call.arguments[1];
  return undefined;
}

/** The statement (or class member) the call belongs to: the unit a reason is written above. */
function enclosingStatement(node) {
  let stmt = node;
  for (let n = node; n; n = n.parent) {
    if (isStatement(n)) {
      stmt = n;
      break;
    }
  }
  // `if (x) await p.catch(() => {});` and `for (...) await ...`: the reason sits above the `if`
  // or the `for`, whose body the statement is (on its line, or on the next when it is long),
  // or which starts on the same line (`if (x) { ... }` on one line).
  for (let n = stmt.parent, child = stmt; n; child = n, n = n.parent) {
    const sameLine = n.loc.start.line === stmt.loc.start.line;
    const bodyOf = isStatement(n) && child === stmt;
    if (!sameLine && !bodyOf) break;
    if (isStatement(n)) stmt = n;
  }
  return stmt;
}

function isStatement(n) {
  return (/(Statement|Declaration)$/.test(n.type) && n.type !== 'BlockStatement') || n.type === 'PropertyDefinition';
}

/** @type {import('eslint').Rule.RuleModule} */
export default {
  meta: {
    type: 'problem',
    docs: { description: 'require a comment saying why a promise handler may drop its error' },
    schema: [],
    messages: {
      silent:
        'This handler drops the rejection silently: say in a comment (above the statement or inside the handler) why losing the error is safe, or handle it.',
    },
  },
  create(context) {
    const source = context.sourceCode;
    /** statements already found to drop an error with a reason: the next line may share it */
    const explained = new Set();
    const hasReason = (stmt, handler) => {
      // A comment right above the statement, or one from the statement's start to the handler's
      // last line (inside the handler, before it in a chain, or trailing on its line).
      // (Above means on a line of its own: a trailing comment of the line before is about that line.)
      const above = source.getCommentsBefore(stmt).filter((c) => {
        const before = source.getTokenBefore(c, { includeComments: true });
        return !before || before.loc.end.line < c.loc.start.line;
      });
      if (above.length > 0) return true;
      const end = handler.loc.end.line;
      if (source.getAllComments().some((c) => c.range[0] >= stmt.range[0] && c.loc.start.line <= end)) return true;
      // A run of such statements, one a line (a teardown's kill, wait, remove), shares the
      // comment above its first.
      const prev = previousStatement(stmt);
      return prev !== undefined && explained.has(prev) && prev.loc.end.line + 1 === stmt.loc.start.line;
    };
    return {
      CallExpression(call) {
        const handler = rejectionHandler(call);
        if (!handler || !isSilentHandler(handler)) return;
        const stmt = enclosingStatement(call);
        if (hasReason(stmt, handler)) explained.add(stmt);
        else context.report({ node: handler, messageId: 'silent' });
      },
    };
  },
};

function previousStatement(stmt) {
  const parent = stmt.parent;
  const list = parent?.type === 'SwitchCase' ? parent.consequent : Array.isArray(parent?.body) ? parent.body : undefined;
  const i = list ? list.indexOf(stmt) : -1;
  return i > 0 ? list[i - 1] : undefined;
}
