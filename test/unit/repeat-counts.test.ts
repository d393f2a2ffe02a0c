// A repeated test's console line counts each verdict: a known failure five times is not "100 %",
// and a test skipped five times is not "0 %" (both were printed so before).
import { expect } from 'chai';
import { repeatCounts } from '../../harness/report/mocha-reporter.ts';

describe('repeats: the console line', () => {
  it('names every verdict with its count', () => {
    expect(repeatCounts({ runs: 5, passed: 5, known: 0, failed: 0, skipped: 0 })).to.equal('5 passed of 5');
    expect(repeatCounts({ runs: 5, passed: 0, known: 5, failed: 0, skipped: 0 })).to.equal('5 known failures of 5');
    expect(repeatCounts({ runs: 5, passed: 0, known: 0, failed: 0, skipped: 5 })).to.equal('5 skipped of 5');
    expect(repeatCounts({ runs: 4, passed: 2, known: 1, failed: 1, skipped: 0 })).to.equal('2 passed, 1 known failure, 1 failed of 4');
  });
});
