// Loaded with `node --require` into Azurite by the twin: Node's clock
// shifted by the milliseconds in the file $TWIN_CLOCK_OFFSET_FILE, read at
// every call (a missing or empty file is no shift). It lets the twin upload
// backups whose Last-Modified lies hours in the past, as libfaketime
// would; Azurite itself is unchanged.
'use strict';
const fs = require('fs');
const file = process.env.TWIN_CLOCK_OFFSET_FILE;
const RealDate = Date;
const realNow = RealDate.now;

function offset() {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

function ShiftedDate(...args) {
  if (!new.target) {
    return new RealDate(realNow() + offset()).toString();
  }
  const at = args.length === 0 ? [realNow() + offset()] : args;
  return Reflect.construct(RealDate, at, new.target);
}
Object.setPrototypeOf(ShiftedDate, RealDate);
ShiftedDate.prototype = RealDate.prototype;
ShiftedDate.now = () => realNow() + offset();

globalThis.Date = ShiftedDate;
