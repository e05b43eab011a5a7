package town

import "github.com/google/uuid"

// Nickname derives an agent's default nickname from its id with tt's index
// formula: index = (byte0*256 + byte1) % 400; 0-199 pick from the boys'
// list, 200-399 from the girls' list.
//
// tt's two lists are literal arrays in its source that this project does not
// copy, so the lists below are tthost's own (popular US first names of the
// 1920s, 200 each). The same id therefore gets the same *index* in both
// programs but usually a different name: a nickname written by tt stays as
// tt wrote it (it is stored in the hash), and only agents spawned by tthost
// get these names. A nickname given explicitly always wins.
func Nickname(id string) string {
	u, err := uuid.Parse(id)
	if err != nil {
		return ""
	}
	i := (int(u[0])*256 + int(u[1])) % 400
	if i < 200 {
		return boysNames[i]
	}
	return girlsNames[i-200]
}

var boysNames = [200]string{
	"Robert", "John", "James", "William", "Charles", "George", "Joseph", "Richard", "Edward", "Donald",
	"Thomas", "Frank", "Harold", "Paul", "Raymond", "Walter", "Jack", "Henry", "Kenneth", "Arthur",
	"Albert", "David", "Harry", "Eugene", "Ralph", "Howard", "Carl", "Willie", "Louis", "Clarence",
	"Earl", "Roy", "Fred", "Joe", "Francis", "Lawrence", "Herbert", "Leonard", "Ernest", "Alfred",
	"Anthony", "Stanley", "Norman", "Gerald", "Daniel", "Samuel", "Bernard", "Billy", "Melvin", "Marvin",
	"Warren", "Michael", "Leroy", "Russell", "Leo", "Andrew", "Edwin", "Elmer", "Peter", "Floyd",
	"Lloyd", "Ray", "Frederick", "Theodore", "Clifford", "Vernon", "Herman", "Clyde", "Chester", "Philip",
	"Alvin", "Lester", "Wayne", "Vincent", "Gordon", "Leon", "Lewis", "Charlie", "Glenn", "Calvin",
	"Martin", "Milton", "Lee", "Jesse", "Dale", "Cecil", "Bill", "Harvey", "Roger", "Victor",
	"Benjamin", "Ronald", "Wallace", "Sam", "Allen", "Arnold", "Willard", "Gilbert", "Edgar", "Oscar",
	"Jimmie", "Johnnie", "Tom", "Jerome", "Everett", "Sidney", "Morris", "Hubert", "Wilbur", "Bobby",
	"Irving", "Homer", "Maurice", "Virgil", "Don", "Jim", "Manuel", "Otis", "Hugh", "Jacob",
	"Glen", "Horace", "Luther", "Dean", "Bruce", "Douglas", "Max", "Jose", "Bob", "Claude",
	"Marion", "Orville", "Julius", "Jerry", "Steve", "Wesley", "Franklin", "Harlan", "Curtis", "Ben",
	"Ivan", "Emil", "Nicholas", "Rudolph", "Alex", "Irvin", "Edmund", "Alton", "Jessie", "Stephen",
	"Morton", "Edmond", "Sylvester", "Delbert", "Wilbert", "Lowell", "Archie", "Mike", "Felix", "Nathan",
	"Roland", "Oliver", "Willis", "Wendell", "Dewey", "Ross", "Karl", "Keith", "Austin", "Emmett",
	"Grover", "Harley", "Forrest", "Marshall", "Allan", "Lyle", "Lonnie", "Aaron", "Duane", "Conrad",
	"Ira", "Sherman", "Elbert", "Carroll", "Mack", "Dwight", "Nelson", "Salvatore", "Percy", "Laurence",
	"Alexander", "Ellis", "Tommy", "Roscoe", "Junior", "Perry", "Rex", "Dennis", "Ervin", "Merle",
}

var girlsNames = [200]string{
	"Mary", "Dorothy", "Helen", "Betty", "Margaret", "Ruth", "Virginia", "Doris", "Mildred", "Frances",
	"Elizabeth", "Evelyn", "Anna", "Marie", "Alice", "Jean", "Shirley", "Barbara", "Irene", "Marjorie",
	"Florence", "Lois", "Martha", "Rose", "Lillian", "Louise", "Catherine", "Ruby", "Eleanor", "Patricia",
	"Gloria", "Josephine", "Grace", "Edna", "Gladys", "Ethel", "Thelma", "Pauline", "Lucille", "Hazel",
	"June", "Juanita", "Annie", "Edith", "Ann", "Elsie", "Norma", "Marian", "Esther", "Wilma",
	"Emma", "Clara", "Phyllis", "Bernice", "Lorraine", "Kathryn", "Beatrice", "Audrey", "Jane", "Geraldine",
	"Laura", "Bertha", "Rita", "Anne", "Eva", "Ida", "Vivian", "Pearl", "Sarah", "Maxine",
	"Beverly", "Agnes", "Genevieve", "Violet", "Julia", "Charlotte", "Mae", "Nancy", "Vera", "Katherine",
	"Lucy", "Jeanne", "Theresa", "Lillie", "Viola", "Bessie", "Alma", "Marguerite", "Minnie", "Jennie",
	"Myrtle", "Sylvia", "Ella", "Harriet", "Georgia", "Nellie", "Leona", "Mattie", "Loretta", "Ellen",
	"Joan", "Velma", "Rosemary", "Carol", "Stella", "Margie", "Mabel", "Caroline", "Geneva", "Eileen",
	"Kathleen", "Sue", "Dolores", "Opal", "Lena", "Jeannette", "Emily", "Maria", "Inez", "Muriel",
	"Naomi", "Blanche", "Fannie", "Daisy", "Lola", "Sara", "Alberta", "Joyce", "Victoria", "Jacqueline",
	"Peggy", "Rosa", "Adeline", "Constance", "Hilda", "Olga", "Sophie", "Estelle", "Nora", "Fern",
	"Winifred", "Roberta", "Iris", "Claire", "Cora", "Erma", "Ada", "Wanda", "Elaine", "Nina",
	"Verna", "Eunice", "Marcella", "Imogene", "Dora", "Henrietta", "Hattie", "Rosie", "Maggie", "Billie",
	"Susie", "Flora", "Gertrude", "Mamie", "Essie", "Carrie", "Sadie", "Lula", "Della", "Katie",
	"Eula", "Rachel", "Ora", "Bonnie", "Lorene", "Gwendolyn", "Celia", "Colleen", "Arlene", "Rosalie",
	"Regina", "Elva", "Goldie", "Freda", "Addie", "Effie", "Irma", "Leola", "Louella", "Mollie",
	"Jewel", "Lottie", "Janet", "Lila", "Annabelle", "Alta", "Olive", "Miriam", "Nadine", "Nettie",
}
