// A local ESLint rule: a promise that is deliberately not awaited (`void p`) says why.
//
// no-floating-promises accepts `void p` as "ignored on purpose", and the brief for issue 18 asks
// that such a promise carry a comment saying why: what if it rejects? (It cannot; or something
// else reports it.) Without one, a rejection is either lost or reaches the daemon's
// unhandledRejection handler as a BUG. Only thenables are checked (type information tells),
// so `void unusedName;` needs nothing.
import { enclosingStatement, reasonChecker } from './reason.js';

/** @type {import('eslint').Rule.RuleModule} */
export default {
  meta: {
    type: 'problem',
    docs: { description: 'require a comment saying why a promise is not awaited' },
    schema: [],
    messages: {
      unexplained:
        'A promise voided without a reason: say in a comment (above the statement or trailing its first line) why it is not awaited and what becomes of its rejection.',
    },
  },
  create(context) {
    const services = context.sourceCode.parserServices;
    // without type information (plain JS files) there is no telling a promise from a value
    if (!services?.program || !services.esTreeNodeToTSNodeMap) return {};
    const checker = services.program.getTypeChecker();
    const isThenable = (node) => {
      const type = checker.getTypeAtLocation(services.esTreeNodeToTSNodeMap.get(node));
      const parts = type.isUnion() ? type.types : [type];
      return parts.some((t) => checker.getPropertyOfType(checker.getApparentType(t), 'then') !== undefined);
    };
    const hasReason = reasonChecker(context.sourceCode);
    return {
      'UnaryExpression[operator="void"]'(node) {
        if (!isThenable(node.argument)) return;
        const stmt = enclosingStatement(node);
        if (!hasReason(stmt, node.loc.start.line)) context.report({ node, messageId: 'unexplained' });
      },
    };
  },
};
