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

import { enclosingStatement, reasonChecker } from './reason.js';

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
    const hasReason = reasonChecker(context.sourceCode);
    return {
      CallExpression(call) {
        const handler = rejectionHandler(call);
        if (!handler || !isSilentHandler(handler)) return;
        if (!hasReason(enclosingStatement(call), handler.loc.end.line)) context.report({ node: handler, messageId: 'silent' });
      },
    };
  },
};
