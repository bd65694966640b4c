import { orderAt } from '../../demo/source-api/records.ts';

// What a complete load of the demo API holds, from the generator itself: both sides are checked against it.

export interface Expected {
  orders: number;
  items: number;
  tags: number;
}

/** Row counts of the first `records` demo orders (seed 1, the demo API's default). */
export function expectedRows(records: number): Expected {
  let items = 0;
  let tags = 0;
  for (let i = 0; i < records; i++) {
    const order = orderAt(i, 1);
    items += order.items.length;
    tags += order.tags.length;
  }
  return { orders: records, items, tags };
}
