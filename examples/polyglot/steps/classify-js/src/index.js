// The polyglot example's second step, in JavaScript: sorts an order into a
// tier, and asks the `decide` node to review large orders (an action).
// An exception becomes a plugin_error with its message and stack.

const LARGE_CENTS = 10000;

function classify(tally) {
  // A tally without a numeric total is a bug upstream: let it throw.
  const total = tally.total_cents.valueOf();
  if (typeof total !== 'number') throw new TypeError(`total_cents is ${typeof total}, not a number`);
  const tier = total >= LARGE_CENTS ? 'large' : 'small';
  console.error(`classify: ${tally.order_id} is ${tier}`);
  const actions = tier === 'large'
    ? [{ kind: 'compute', target: 'decide', payload: JSON.stringify({ reason: `total ${total} >= ${LARGE_CENTS}` }) }]
    : [];
  return { output: { ...tally, tier }, actions };
}

export const compute = {
  run(_ctx, input) {
    try {
      const { output, actions } = classify(JSON.parse(input));
      return { output: JSON.stringify(output), actions };
    } catch (e) {
      throw { tag: 'fatal', val: `${e.name}: ${e.message}\n${e.stack ?? ''}` };
    }
  },
};
