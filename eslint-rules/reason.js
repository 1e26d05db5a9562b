// What tvm's lint rules accept as "a comment saying why": shared by no-silent-catch and
// no-unexplained-void.

/** The statement (or class member) the call belongs to: the unit a reason is written above. */
export function enclosingStatement(node) {
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

/**
 * hasReason(stmt, lastLine): a comment right above the statement (on a line of its own: a
 * trailing comment of the line before is about that line), or one from the statement's start
 * to `lastLine` (inside a handler, before it in a chain, or trailing on its line). A run of such
 * statements, one a line (a teardown's kill, wait, remove), shares the comment above its first.
 */
export function reasonChecker(source) {
  const explained = new Set();
  const has = (stmt, lastLine) => {
    const above = source.getCommentsBefore(stmt).filter((c) => {
      const before = source.getTokenBefore(c, { includeComments: true });
      return !before || before.loc.end.line < c.loc.start.line;
    });
    if (above.length > 0) return true;
    if (source.getAllComments().some((c) => c.range[0] >= stmt.range[0] && c.loc.start.line <= lastLine)) return true;
    const prev = previousStatement(stmt);
    return prev !== undefined && explained.has(prev) && prev.loc.end.line + 1 === stmt.loc.start.line;
  };
  return (stmt, lastLine) => {
    const ok = has(stmt, lastLine);
    if (ok) explained.add(stmt);
    return ok;
  };
}

function previousStatement(stmt) {
  const parent = stmt.parent;
  const list = parent?.type === 'SwitchCase' ? parent.consequent : Array.isArray(parent?.body) ? parent.body : undefined;
  const i = list ? list.indexOf(stmt) : -1;
  return i > 0 ? list[i - 1] : undefined;
}
