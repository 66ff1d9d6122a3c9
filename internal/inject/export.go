package inject

// Exported views of the RFC 822 tokenizer and of djb's getopt, for the
// programs that parse addresses or options the way qmail-inject does
// (fastforward's newaliases reads /etc/aliases with the same token822.c).

// TokenType classifies a [Token].
type TokenType = tokType

// The token types of token822.c.
const (
	TokenAtom    TokenType = tAtom
	TokenQuote   TokenType = tQuote   // a quoted string, or an atom that cannot be printed bare
	TokenLiteral TokenType = tLiteral // [domain literal]
	TokenComment TokenType = tComment
	TokenComma   TokenType = tComma
	TokenAt      TokenType = tAt
	TokenDot     TokenType = tDot
	TokenLeft    TokenType = tLeft // <
	TokenRight   TokenType = tRight
	TokenSemi    TokenType = tSemi
	TokenColon   TokenType = tColon
)

// Token is one RFC 822 token.
type Token = token

// Type is the token's type.
func (t token) Type() TokenType { return t.typ }

// Text is the unescaped text of an atom, quoted string, literal or comment,
// and "" for the one-byte tokens.
func (t token) Text() string { return t.s }

// Tokenize splits s into tokens as token822_parse does; ok is false on a
// lexical error (an unterminated quoted string, comment or literal, or a
// ")" or "]" where a token starts).
func Tokenize(s []byte) (toks []Token, ok bool) { return tokenize(s) }

// Unquote prints tokens as a bare address (token822_unquote): no quoting,
// literals in brackets, comments dropped.
func Unquote(toks []Token) string { return unquote(toks) }

// Getopt is djb's sgetopt over a command line.
type Getopt struct{ g *getopt }

// NewGetopt starts reading the options of args (without argv[0], which
// names the program in the messages) against opts, getopt's letters with
// ":" after those that take an argument.
func NewGetopt(argv0 string, args []string, opts string) Getopt {
	return Getopt{newGetopt(argv0, args, opts)}
}

// Next returns the next option letter and its argument; done is true at the
// end of the options. An unknown letter or a missing argument is an *Error
// (exit 100) whose Text is sgetopt's message line, e.g.
// "fastforward: illegal option -- x\n".
func (g Getopt) Next() (c byte, arg string, done bool, err error) { return g.g.next() }

// Rest returns the arguments after the options.
func (g Getopt) Rest() []string { return g.g.rest() }
