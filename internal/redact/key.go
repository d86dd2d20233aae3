package redact

// Word roles used by IsSecretKey. A key is split into word parts; each part
// is looked up (lowercased) in keyWords.
type wordRole uint8

const (
	roleNone              wordRole = iota
	roleSecret                     // names a secret on its own: "token", "password"
	roleLastOnly                   // names a secret only as the key's last part: "auth"
	rolePairFirst                  // names a secret when followed by "key"/"keys": "api", "private"
	rolePairKey                    // "key", "keys"
	roleBenignAfter                // cancels a match it directly follows: "count", "name", "type"
	roleBenignBefore               // cancels a match it directly precedes: "has", "max", "num"
	roleBenignEither               // cancels a match on either side: "max", "min", "total", "count"
	roleBenignBeforeToken          // cancels a following "token" only (LLM usage fields): "prompt", "output"
	roleToken                      // "token": a secret word that roleBenignBeforeToken can cancel
)

// keyWords is the vocabulary of IsSecretKey. It is documented in rules.go
// (KeyWords) so operators can see it.
var keyWords = map[string]wordRole{
	// secret on its own
	"token": roleToken, "secret": roleSecret, "secrets": roleSecret,
	"password": roleSecret, "passwords": roleSecret, "passwd": roleSecret,
	"pwd": roleSecret, "passphrase": roleSecret, "passcode": roleSecret,
	"credential": roleSecret, "credentials": roleSecret, "creds": roleSecret,
	"authorization": roleSecret, "apikey": roleSecret, "apikeys": roleSecret,
	"cookie": roleSecret, "cookies": roleSecret, "signature": roleSecret,
	"sig": roleSecret, "privatekey": roleSecret, "privkey": roleSecret,
	"secretkey": roleSecret, "accesskey": roleSecret, "authtoken": roleSecret,
	"accesstoken": roleSecret, "refreshtoken": roleSecret, "clientsecret": roleSecret,
	"sessionkey": roleSecret, "setcookie": roleSecret, "jwt": roleSecret,
	"bearer": roleSecret, "otp": roleSecret,
	// secret only as the last part ("auth", "basicAuth"; not "auth_mode")
	"auth": roleLastOnly,
	// two-word names: <first>_key
	"api": rolePairFirst, "private": rolePairFirst, "session": rolePairFirst,
	"access": rolePairFirst, "signing": rolePairFirst, "encryption": rolePairFirst,
	"master": rolePairFirst, "client": rolePairFirst, "app": rolePairFirst,
	"key": rolePairKey, "keys": rolePairKey,
	// qualifiers after a match that make the key describe the secret, not hold it
	"count": roleBenignEither, "counts": roleBenignAfter, "usage": roleBenignAfter,
	"used": roleBenignAfter, "budget": roleBenignAfter, "limit": roleBenignAfter,
	"limits": roleBenignAfter, "max": roleBenignEither, "min": roleBenignEither,
	"total": roleBenignEither, "type": roleBenignAfter, "types": roleBenignAfter,
	"kind": roleBenignAfter, "ttl": roleBenignAfter, "expiry": roleBenignAfter,
	"expires": roleBenignAfter, "expiration": roleBenignAfter, "expired": roleBenignAfter,
	"length": roleBenignAfter, "len": roleBenignAfter, "size": roleBenignAfter,
	"name": roleBenignAfter, "names": roleBenignAfter, "id": roleBenignAfter,
	"ids": roleBenignAfter, "hint": roleBenignAfter, "policy": roleBenignAfter,
	"rotation": roleBenignAfter, "rotated": roleBenignAfter, "required": roleBenignAfter,
	"present": roleBenignAfter, "configured": roleBenignAfter, "enabled": roleBenignAfter,
	"source": roleBenignAfter, "env": roleBenignAfter, "file": roleBenignAfter,
	"path": roleBenignAfter, "url": roleBenignAfter, "uri": roleBenignAfter,
	"endpoint": roleBenignAfter, "scope": roleBenignAfter, "scopes": roleBenignAfter,
	"version": roleBenignAfter, "format": roleBenignAfter, "algorithm": roleBenignAfter,
	"alg": roleBenignAfter, "method": roleBenignAfter, "mode": roleBenignAfter,
	"scheme": roleBenignAfter, "status": roleBenignAfter, "state": roleBenignAfter,
	"valid": roleBenignAfter, "verified": roleBenignAfter, "error": roleBenignAfter,
	"errors": roleBenignAfter, "estimate": roleBenignAfter, "field": roleBenignAfter,
	"fields": roleBenignAfter, "ref": roleBenignAfter, "prefix": roleBenignAfter,
	"fingerprint": roleBenignAfter, "ratio": roleBenignAfter, "rate": roleBenignAfter,
	"strength": roleBenignAfter, "age": roleBenignAfter,
	// qualifiers before a match
	"has": roleBenignBefore, "is": roleBenignBefore, "num": roleBenignBefore,
	"use": roleBenignBefore, "uses": roleBenignBefore, "require": roleBenignBefore,
	"requires": roleBenignBefore, "needs": roleBenignBefore, "no": roleBenignBefore,
	// LLM usage fields: prompt_token, output_token, ...
	"prompt": roleBenignBeforeToken, "completion": roleBenignBeforeToken,
	"input": roleBenignBeforeToken, "output": roleBenignBeforeToken,
	"cached": roleBenignBeforeToken, "reasoning": roleBenignBeforeToken,
}

// maxWordLen bounds the parts that can match keyWords; longer parts are
// never looked up.
const maxWordLen = 16

// keyPart is one word part of a key, lowercased into a fixed buffer.
type keyPart struct {
	buf  [maxWordLen]byte
	n    int // length, or -1 when the part is longer than maxWordLen
	role wordRole
}

// IsSecretKey reports whether a metadata key names a secret. The key is
// split into word parts on every byte that is not an ASCII letter or digit
// (so "_", "-", ".", space, ":" ...), on lower→upper camelCase boundaries
// ("apiKey"), before the last capital of an acronym ("APIKey" → API, Key)
// and between letters and digits; parts are compared case-insensitively
// with a fixed vocabulary (see KeyWords):
//
//   - a secret word (token, secret, password, passwd, pwd, credential(s),
//     authorization, apikey, cookie, signature, ...) anywhere: "GITHUB_TOKEN",
//     "db.password", "X-Auth-Token";
//   - a two-word name <api|private|session|access|signing|encryption|master|
//     client|app> followed by key(s): "apiKey", "X-Api-Key", "private_key";
//   - "auth" as the last part: "auth", "basicAuth" (not "auth_mode").
//
// A match is cancelled when the part right after it describes the secret
// instead of holding it ("token_count", "secret_name", "password_policy",
// "api_key_id") or the part right before it is a qualifier ("has_password",
// "max_token", "prompt_token"). Whole words only: "tokenizer", "passage",
// "secretary" and "monkey" are not secret keys. IsSecretKey does not
// allocate.
func IsSecretKey(key string) bool {
	if !mayNameSecret(key) {
		return false
	}
	var (
		prev, prev2 keyPart // the two parts before the current one
		cur         keyPart
		pending     bool // a match awaiting the next part (may be cancelled)
		pendingLast bool // a match that holds only if no part follows
		nparts      int
		start       = -1
	)
	n := len(key)
	for i := 0; i <= n; i++ {
		boundary := i == n
		var c byte
		if !boundary {
			c = key[i]
			cl := class[c]
			if cl&(cLower|cUpper|cDigit) == 0 && c < 0x80 {
				boundary = true
			} else if start >= 0 && i > start {
				pc := class[key[i-1]]
				switch {
				case pc&cLower != 0 && cl&cUpper != 0:
					boundary = true
				case pc&cUpper != 0 && cl&cUpper != 0 && i+1 < n && class[key[i+1]]&cLower != 0:
					boundary = true
				case pc&cDigit != 0 && cl&(cLower|cUpper) != 0, pc&(cLower|cUpper) != 0 && cl&cDigit != 0:
					boundary = true
				}
			}
		}
		if boundary && start >= 0 {
			// close the part key[start:i]
			cur.n = i - start
			if cur.n > maxWordLen {
				cur.n = -1
				cur.role = roleNone
			} else {
				for j := 0; j < cur.n; j++ {
					b := key[start+j]
					if b >= 'A' && b <= 'Z' {
						b += 'a' - 'A'
					}
					cur.buf[j] = b
				}
				cur.role = keyWords[string(cur.buf[:cur.n])]
			}
			nparts++
			if pending {
				if cur.role == roleBenignAfter || cur.role == roleBenignEither {
					pending = false
				} else {
					return true
				}
			}
			pendingLast = false
			// Does a match end at this part?
			var before *keyPart
			matched := false
			switch {
			case cur.role == roleSecret || cur.role == roleToken:
				matched, before = true, &prev
				if nparts < 2 {
					before = nil
				}
			case cur.role == roleLastOnly:
				matched, before = true, &prev
				if nparts < 2 {
					before = nil
				}
			case cur.role == rolePairKey && nparts >= 2 && prev.role == rolePairFirst:
				matched, before = true, &prev2
				if nparts < 3 {
					before = nil
				}
			}
			if matched && before != nil {
				switch {
				case before.role == roleBenignBefore, before.role == roleBenignEither:
					matched = false
				case before.role == roleBenignBeforeToken && cur.role == roleToken:
					matched = false
				}
			}
			if matched {
				if cur.role == roleLastOnly {
					pendingLast = true
				} else {
					pending = true
				}
			}
			prev2, prev = prev, cur
			start = -1
		}
		if i < n && start < 0 && (class[c]&(cLower|cUpper|cDigit) != 0 || c >= 0x80) {
			start = i
		}
	}
	return pending || pendingLast
}

// letterSet is the set of ASCII letters (case-folded) in a string, one bit
// per letter.
type letterSet uint32

func lettersOf(s string) letterSet {
	var m letterSet
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c >= 'a' && c <= 'z' {
			m |= 1 << (c - 'a')
		}
	}
	return m
}

// secretLetterSets holds, for every word that can complete a match (secret
// words, "auth", "key"), the letters it needs; supersets are removed. A key
// whose letters cover none of them cannot name a secret, which settles most
// keys ("surface", "attempt", "worker") in one cheap pass.
var secretLetterSets = func() []letterSet {
	var sets []letterSet
	for w, r := range keyWords {
		if r == roleSecret || r == roleToken || r == roleLastOnly || r == rolePairKey {
			sets = append(sets, lettersOf(w))
		}
	}
	var min []letterSet
	for i, a := range sets {
		keep := true
		for j, b := range sets {
			if i != j && a&b == b && (a != b || j < i) {
				keep = false // a is a superset of b (or a duplicate)
				break
			}
		}
		if keep {
			min = append(min, a)
		}
	}
	return min
}()

// mayNameSecret is the prefilter of IsSecretKey.
func mayNameSecret(key string) bool {
	m := lettersOf(key)
	for _, need := range secretLetterSets {
		if m&need == need {
			return true
		}
	}
	return false
}
