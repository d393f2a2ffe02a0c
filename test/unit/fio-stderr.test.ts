import { expect } from 'chai';
import { meansIoFailed } from '../../harness/workload/fio.ts';

describe("fio's stderr: an I/O error or only its statistics", () => {
  it("fio's latency-percentile message (M4, RF-09 iSER, right after the outage) is not an I/O error", () => {
    expect(meansIoFailed('fio: error calculating latency percentiles')).to.equal(false);
  });

  it('I/O errors are, and so is any other line that says error (verify errors are judged apart)', () => {
    // as fio 3.33 printed them here (the short-write honesty test, RF-08 NFS at 63ff796)
    expect(meansIoFailed('fio: io_u error on file /tmp/sw.dat: File too large: write offset=1064960, buflen=49152')).to.equal(true);
    expect(meansIoFailed('fio: pid=12460, err=27/file:io_u.c:1876, func=io_u error, error=File too large')).to.equal(true);
    expect(meansIoFailed('fio: some error fio may print one day')).to.equal(true);
    expect(meansIoFailed('fio: error calculating latency percentiles; and an I/O error')).to.equal(true);
  });
});
