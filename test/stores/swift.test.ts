/** The store suite (./cases.ts) through the proxy over OpenStack Swift 2.30 with s3api. */
import { swiftUpstream } from '../support/swift.ts';
import { storeSuite } from './cases.ts';

storeSuite({ name: 'Swift 2.30 s3api', kind: 'swift', upstream: swiftUpstream });
